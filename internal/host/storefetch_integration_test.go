//go:build integration

package host

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/signkey"
	rstore "github.com/hoistdev/hoist/internal/store"
)

// storeFixture is a bucket in kumo, the key that signs its records, and
// a host (a directory) set up for it.
type storeFixture struct {
	t   *testing.T
	loc bucket.Location
	raw *s3.Client
	st  *rstore.Store
	key ed25519.PrivateKey
	l   Layout
	seq uint64
	// spec is the host spec's sum the records put names.
	spec string
}

var quick = bucket.Retries{Attempts: 2, MaxBackoff: 50 * time.Millisecond}

func newStoreFixture(t *testing.T) *storeFixture {
	t.Helper()
	endpoint := kumotest.Start(t)
	f := &storeFixture{t: t, l: For(t.TempDir(), "hello"),
		loc: bucket.Location{Bucket: "hello-releases", Prefix: "hello/store/", Region: "us-east-1", Endpoint: endpoint, AccessKeyID: "kumo", SecretAccessKey: "kumo"}}
	ctx := context.Background()
	var err error
	if f.raw, err = f.loc.Client(ctx, quick); err != nil {
		t.Fatal(err)
	}
	if _, err := f.raw.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(f.loc.Bucket)}); err != nil {
		t.Fatal(err)
	}
	if f.st, err = rstore.Open(ctx, f.loc, quick); err != nil {
		t.Fatal(err)
	}
	if _, f.key, err = signkey.GenerateKey("test"); err != nil {
		t.Fatal(err)
	}
	line, _ := signkey.PublicKeyLine(f.key.Public().(ed25519.PublicKey), "")
	if err := WriteStoreSpec(f.l, &hostproto.StoreSpec{Location: f.loc, PublicKey: line}); err != nil {
		t.Fatal(err)
	}
	return f
}

// put puts b's objects in the store (all, or those keep selects), its
// index and manifest, and returns its record signed with key.
func (f *storeFixture) put(b *built, keep func(sum string) bool, key ed25519.PrivateKey) []byte {
	f.t.Helper()
	ctx := context.Background()
	for sum, data := range b.objects {
		if keep == nil || keep(sum) {
			if err := f.st.PutObject(ctx, sum, data); err != nil {
				f.t.Fatal(err)
			}
		}
	}
	if err := f.st.PutIndex(ctx, b.x); err != nil {
		f.t.Fatal(err)
	}
	msum, err := f.st.PutManifest(ctx, b.m)
	if err != nil {
		f.t.Fatal(err)
	}
	f.seq++
	raw, err := rstore.Sign(key, &rstore.Record{App: "hello", Release: b.m.ID, Manifest: msum, Index: b.m.Index, Spec: f.spec, Seq: f.seq,
		Op: rstore.OpDeploy, At: time.Now().UTC().Truncate(time.Second)})
	if err != nil {
		f.t.Fatal(err)
	}
	return raw
}

// move makes raw the store's current record, whatever it was.
func (f *storeFixture) move(raw []byte) {
	f.t.Helper()
	_, etag, err := f.st.Current(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.st.Move(context.Background(), raw, etag); err != nil {
		f.t.Fatal(err)
	}
}

// freshHost sets up another host for the store: one that holds nothing.
func (f *storeFixture) freshHost() {
	f.t.Helper()
	f.l = For(f.t.TempDir(), "hello")
	line, _ := signkey.PublicKeyLine(f.key.Public().(ed25519.PublicKey), "")
	if err := WriteStoreSpec(f.l, &hostproto.StoreSpec{Location: f.loc, PublicKey: line}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *storeFixture) fetch(raw []byte) (hostproto.StoreFetched, error) {
	return fetchFromStore(context.Background(), f.l, "", raw, quick)
}

func TestFetchFromStore(t *testing.T) {
	f := newStoreFixture(t)
	assets := noise(1, 3<<20)
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1"), "assets/big.bin": assets, "assets/a.css": []byte("a{}")})
	got, err := f.fetch(f.put(r1, nil, f.key))
	if err != nil {
		t.Fatal(err)
	}
	if got.Release != id1 || got.Files != 3 || got.Objects != len(r1.objects)-1 || got.Fetched <= 0 {
		// Objects: every chunk and small file, not big.bin whole.
		t.Errorf("first fetch: %+v", got)
	}
	if err := release.Verify(r1.x, f.l.Release(id1)); err != nil {
		t.Fatal(err)
	}
	// A one-line change of the large file: the host fetches the chunk
	// that changed, and the small file, nothing else.
	r2 := build(t, "hello", id2, map[string][]byte{"app*": []byte("v2"), "assets/big.bin": edited(assets), "assets/a.css": []byte("a{}")})
	got, err = f.fetch(f.put(r2, nil, f.key))
	if err != nil {
		t.Fatal(err)
	}
	if got.Objects < 2 || got.Objects > 3 || got.Bytes > 600<<10 || got.Linked != 1 {
		t.Errorf("second fetch: %+v, want the changed chunk(s) of big.bin and app", got)
	}
	if err := release.Verify(r2.x, f.l.Release(id2)); err != nil {
		t.Fatal(err)
	}
	again, err := f.fetch(f.put(r2, nil, f.key))
	if err != nil || !again.Already {
		t.Errorf("a release the host has: %+v %v", again, err)
	}
	if left, _ := os.ReadDir(f.l.Uploads()); len(left) != 0 {
		t.Errorf("uploads left behind: %v", left)
	}
}

// What the bucket cannot make a host do: run a release the key did not
// sign, or one whose objects are not those the signed record names.
func TestFetchFromStoreRefuses(t *testing.T) {
	f := newStoreFixture(t)
	ctx := context.Background()
	r1 := build(t, "hello", id1, map[string][]byte{"app*": noise(2, 600<<10), "msg.txt": []byte("hello\n")})

	t.Run("a record signed by another key", func(t *testing.T) {
		_, other, _ := signkey.GenerateKey("mallory")
		_, err := f.fetch(f.put(r1, nil, other))
		otherFP, _ := signkey.Fingerprint(other.Public().(ed25519.PublicKey))
		trusted, _ := signkey.Fingerprint(f.key.Public().(ed25519.PublicKey))
		var wk *rstore.WrongKeyError
		if !errors.As(err, &wk) || !strings.Contains(err.Error(), otherFP) || !strings.Contains(err.Error(), trusted) {
			t.Fatalf("a record signed by another key: %v, want it refused naming both keys", err)
		}
		noRelease(t, f.l, id1)
	})
	t.Run("a record of another app", func(t *testing.T) {
		raw := f.put(r1, nil, f.key)
		rec, _, _ := rstore.Parse(raw)
		rec.App = "shop"
		forged, _ := rstore.Sign(f.key, rec)
		if _, err := f.fetch(forged); err == nil || !strings.Contains(err.Error(), "it is for shop") {
			t.Fatalf("a record of another app: %v", err)
		}
	})
	t.Run("a damaged object", func(t *testing.T) {
		raw := f.put(r1, nil, f.key)
		var victim string
		for sum := range r1.objects {
			if string(r1.objects[sum]) == "hello\n" {
				victim = sum
			}
		}
		if _, err := f.raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.loc.Bucket), Key: aws.String(f.st.ObjectKey(victim)),
			Body: bytes.NewReader([]byte("\x28\xb5\x2f\xfd\x00\x58\x31\x00\x00evil\n"))}); err != nil {
			t.Fatal(err)
		}
		_, err := f.fetch(raw)
		if err == nil || !strings.Contains(err.Error(), "refused release "+id1) || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "msg.txt") {
			t.Fatalf("a damaged object: %v, want the release refused naming the file", err)
		}
		noRelease(t, f.l, id1)
	})
	t.Run("a missing object", func(t *testing.T) {
		f.freshHost() // not the one that fetched what it could above
		raw := f.put(r1, nil, f.key)
		var victim string
		for sum := range r1.objects {
			if len(r1.objects[sum]) > 1000 && len(r1.objects[sum]) < 600<<10 {
				victim = sum // a chunk of app
			}
		}
		if _, err := f.raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.loc.Bucket), Key: aws.String(f.st.ObjectKey(victim))}); err != nil {
			t.Fatal(err)
		}
		_, err := f.fetch(raw)
		if err == nil || !strings.Contains(err.Error(), "is incomplete") || !strings.Contains(err.Error(), "app") {
			t.Fatalf("a missing object: %v, want the release refused as incomplete", err)
		}
		noRelease(t, f.l, id1)
	})
	t.Run("a manifest replaced", func(t *testing.T) {
		f.freshHost()
		raw := f.put(r1, nil, f.key)
		rec, _, _ := rstore.Parse(raw)
		if _, err := f.raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.loc.Bucket), Key: aws.String(f.loc.Key("manifests/" + rec.Manifest)),
			Body: bytes.NewReader([]byte(`{"app":"hello"}`))}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.fetch(raw); err == nil || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("a replaced manifest: %v", err)
		}
		noRelease(t, f.l, id1)
	})
}

func noRelease(t *testing.T, l Layout, id string) {
	t.Helper()
	if _, err := os.Stat(l.Release(id)); err == nil {
		t.Errorf("release %s is on the host all the same", id)
	}
}

// A host that reads the store's record while a deploy is half done —
// its objects partly put, its record not moved — fetches the release
// the record names, whole; once the record moved, the new one. A record
// from before, put back, is refused.
func TestFetchCurrentDuringADeploy(t *testing.T) {
	f := newStoreFixture(t)
	assets := noise(3, 2<<20)
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1"), "assets/big.bin": assets})
	old := f.put(r1, nil, f.key)
	f.move(old)
	// The next deploy has put half of what it changed.
	r2 := build(t, "hello", id2, map[string][]byte{"app*": []byte("v2"), "assets/big.bin": noise(4, 2<<20)})
	n := 0
	_ = f.put(r2, func(string) bool { n++; return n%2 == 0 }, f.key)
	got, err := f.fetch(nil)
	if err != nil || got.Release != id1 {
		t.Fatalf("fetch during the deploy: %+v %v, want %s whole", got, err, id1)
	}
	if err := release.Verify(r1.x, f.l.Release(id1)); err != nil {
		t.Fatal(err)
	}
	noRelease(t, f.l, id2)
	// The deploy ends: every object, then the record.
	f.move(f.put(r2, nil, f.key))
	if got, err := f.fetch(nil); err != nil || got.Release != id2 {
		t.Fatalf("fetch after the deploy: %+v %v, want %s", got, err, id2)
	}
	if err := release.Verify(r2.x, f.l.Release(id2)); err != nil {
		t.Fatal(err)
	}
	if lk, _ := ReadLock(f.l); lk != nil {
		t.Errorf("the fetch left its lock: %+v", lk)
	}
	// Someone puts the old signed record back.
	f.move(old)
	if _, err := f.fetch(nil); err == nil || !strings.Contains(err.Error(), "an old record was put back") {
		t.Errorf("an old record put back: %v, want it refused", err)
	}
}

// A host whose store does not answer says so, within the attempts it
// makes, and changes nothing.
func TestFetchFromUnreachableStore(t *testing.T) {
	f := newStoreFixture(t)
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1")})
	raw := f.put(r1, nil, f.key)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	loc := f.loc
	loc.Endpoint = dead
	line, _ := signkey.PublicKeyLine(f.key.Public().(ed25519.PublicKey), "")
	if err := WriteStoreSpec(f.l, &hostproto.StoreSpec{Location: loc, PublicKey: line}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = fetchFromStore(context.Background(), f.l, "", raw, bucket.Retries{Attempts: 3, MaxBackoff: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "cannot be reached") || !strings.Contains(err.Error(), "attempts, 3") {
		t.Fatalf("an unreachable store: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("took %s", took)
	}
	noRelease(t, f.l, id1)
}
