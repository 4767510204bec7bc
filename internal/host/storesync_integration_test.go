//go:build integration

package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// activated is what the sync asked to activate, in place of systemd.
type activated struct {
	spec *hostproto.Spec
	id   string
}

func fakeActivate(t *testing.T, err error) *[]activated {
	t.Helper()
	var got []activated
	old := syncActivate
	syncActivate = func(_ context.Context, _ Layout, s *hostproto.Spec, id string, _ io.Writer) error {
		got = append(got, activated{s, id})
		return err
	}
	t.Cleanup(func() { syncActivate = old })
	return &got
}

// syncSpec is a whole spec of app, running command.
func syncSpec(app, command string) hostproto.Spec {
	return hostproto.Spec{App: app, Command: command, Port: 4000, HealthPath: "/up", HealthTimeout: time.Minute, HealthInterval: time.Second, KeepReleases: 3}
}

func (f *storeFixture) putSpec(s hostproto.Spec) string {
	f.t.Helper()
	b, _ := json.Marshal(s)
	sum, err := f.st.PutSpec(context.Background(), b)
	if err != nil {
		f.t.Fatal(err)
	}
	return sum
}

func (f *storeFixture) sync() (hostproto.StoreSynced, bool, error) {
	return syncFromStore(context.Background(), f.l, "", quick, io.Discard)
}

// A host catches up with the store's record by itself: it fetches the
// release the record names and activates it with the spec the record
// names; a record of the release it serves changes nothing.
func TestSyncFromStore(t *testing.T) {
	f := newStoreFixture(t)
	got := fakeActivate(t, nil)
	f.spec = f.putSpec(syncSpec("hello", "bin/hello"))
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1")})
	f.move(f.put(r1, nil, f.key))
	out, attempted, err := f.sync()
	if err != nil || !attempted || !out.Switched || out.Release != id1 || out.Fetched <= 0 {
		t.Fatalf("sync: %+v attempted=%v %v, want %s fetched and switched", out, attempted, err, id1)
	}
	if len(*got) != 1 || (*got)[0].id != id1 || (*got)[0].spec.Command != "bin/hello" || (*got)[0].spec.Port != 4000 {
		t.Fatalf("activated %+v, want %s with the store's spec", *got, id1)
	}
	if lk, _ := ReadLock(f.l); lk != nil {
		t.Errorf("the sync left its lock: %+v", lk)
	}
	// The release is current now (the fake activated nothing).
	if err := swapSymlink("releases/"+id1, f.l.Current()); err != nil {
		t.Fatal(err)
	}
	if out, attempted, err := f.sync(); err != nil || attempted || out.Switched || !out.Already {
		t.Errorf("sync of the current release: %+v attempted=%v %v, want nothing done", out, attempted, err)
	}
	if len(*got) != 1 {
		t.Errorf("activated again: %+v", *got)
	}
	// A host set up without a store follows none.
	f.l = For(t.TempDir(), "hello")
	if out, attempted, err := f.sync(); err != nil || attempted || out.Release != "" {
		t.Errorf("sync without a store: %+v attempted=%v %v", out, attempted, err)
	}
}

// What the bucket cannot make a host activate: a spec that is not the
// one the record names, or another app's; a record without a spec (an
// older hoist's) is fetched and not switched to.
func TestSyncFromStoreRefusesSpecs(t *testing.T) {
	ctx := context.Background()
	r1 := build(t, "hello", id1, map[string][]byte{"app*": []byte("v1")})
	for _, tt := range []struct {
		name string
		// prepare puts the spec the records name, and may damage it.
		prepare func(f *storeFixture)
		want    string
	}{
		{"no spec", func(f *storeFixture) {}, "names no host spec"},
		{"a spec replaced in the bucket", func(f *storeFixture) {
			f.spec = f.putSpec(syncSpec("hello", "bin/hello"))
			evil, _ := json.Marshal(syncSpec("hello", "/bin/sh -c evil"))
			if _, err := f.raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(f.loc.Bucket), Key: aws.String(f.loc.Key("specs/" + f.spec)),
				Body: bytes.NewReader(evil)}); err != nil {
				t.Fatal(err)
			}
		}, "is damaged"},
		{"a spec missing", func(f *storeFixture) {
			f.spec = f.putSpec(syncSpec("hello", "bin/hello"))
			if _, err := f.raw.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.loc.Bucket), Key: aws.String(f.loc.Key("specs/" + f.spec))}); err != nil {
				t.Fatal(err)
			}
		}, "is incomplete"},
		{"another app's spec", func(f *storeFixture) {
			f.spec = f.putSpec(syncSpec("shop", "bin/shop"))
		}, "shop's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newStoreFixture(t)
			got := fakeActivate(t, errors.New("must not be called"))
			tt.prepare(f)
			f.move(f.put(r1, nil, f.key))
			_, attempted, err := f.sync()
			if err == nil || !strings.Contains(err.Error(), tt.want) || attempted || len(*got) != 0 {
				t.Fatalf("sync: attempted=%v activated=%+v %v, want it refused (%q) before any activation", attempted, *got, err, tt.want)
			}
			if f.l.CurrentID() != "" {
				t.Errorf("a release became current: %s", f.l.CurrentID())
			}
		})
	}
}
