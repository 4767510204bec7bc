//go:build integration

package store

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/usererr"
)

// newBucket starts kumo and makes a bucket in it; it returns the
// store's location and a raw client to tamper with the bucket.
func newBucket(t *testing.T) (bucket.Location, *s3.Client) {
	t.Helper()
	endpoint := kumotest.Start(t)
	loc := bucket.Location{Bucket: "shop-releases", Prefix: "shop/store/", Region: "us-east-1", Endpoint: endpoint,
		AccessKeyID: "kumo", SecretAccessKey: "kumo"}
	c, err := loc.Client(context.Background(), bucket.Retries{Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(loc.Bucket)}); err != nil {
		t.Fatal(err)
	}
	return loc, c
}

func openStore(t *testing.T, loc bucket.Location) *Store {
	t.Helper()
	st, err := Open(context.Background(), loc, bucket.Retries{Attempts: 2, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// Objects go in compressed and come out checked: a damaged one or a
// missing one is named as such.
func TestObjects(t *testing.T) {
	loc, raw := newBucket(t)
	st := openStore(t, loc)
	ctx := context.Background()
	data := bytes.Repeat([]byte("a line of the release\n"), 4000)
	sum := release.SumBytes(data)
	if has, err := st.Has(ctx, sum); err != nil || has {
		t.Fatalf("Has before the put: %v %v", has, err)
	}
	if err := st.PutObject(ctx, sum, data); err != nil {
		t.Fatal(err)
	}
	if has, err := st.Has(ctx, sum); err != nil || !has {
		t.Fatalf("Has after the put: %v %v", has, err)
	}
	if put := st.PutBytes(); put <= 0 || put > int64(len(data))/10 {
		t.Errorf("put %d bytes for %d of repeated lines: not compressed", put, len(data))
	}
	got, err := st.Object(ctx, sum, int64(len(data)))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Object: %v", err)
	}
	// Someone who can write the bucket replaces it.
	if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(st.ObjectKey(sum)),
		Body: bytes.NewReader(encoder.EncodeAll([]byte("their code"), nil))}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Object(ctx, sum, int64(len(data))); !errors.Is(err, ErrDamaged) {
		t.Errorf("a replaced object: %v, want it damaged", err)
	}
	if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(st.ObjectKey(sum)),
		Body: bytes.NewReader([]byte("not even zstd"))}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Object(ctx, sum, int64(len(data))); !errors.Is(err, ErrDamaged) {
		t.Errorf("garbage: %v, want it damaged", err)
	}
	// A bomb: little that decompresses to much more than the index says.
	bomb := encoder.EncodeAll(make([]byte, 8<<20), nil)
	if _, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(st.ObjectKey(sum)),
		Body: bytes.NewReader(bomb)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Object(ctx, sum, int64(len(data))); !errors.Is(err, ErrDamaged) {
		t.Errorf("a zstd bomb: %v, want it damaged", err)
	}
	other := release.SumBytes([]byte("never put"))
	if _, err := st.Object(ctx, other, 9); !errors.Is(err, ErrMissing) {
		t.Errorf("an object never put: %v, want it missing", err)
	}
	x := &release.Index{Entries: []release.Entry{{Path: "app", Type: release.TypeFile, Mode: 0o755, Size: int64(len(data)), Sum: sum}}}
	if err := st.PutIndex(ctx, x); err != nil {
		t.Fatal(err)
	}
	back, canon, err := st.Index(ctx, x.Sum())
	if err != nil || release.SumBytes(canon) != x.Sum() || len(back.Entries) != 1 {
		t.Fatalf("Index: %v", err)
	}
	if _, _, err := st.Index(ctx, other); !errors.Is(err, ErrMissing) {
		t.Errorf("an index never put: %v", err)
	}
}

func signed(t *testing.T, key ed25519.PrivateKey, seq uint64, id string) []byte {
	t.Helper()
	r := testRecord()
	r.Seq, r.Release = seq, id
	raw, err := Sign(key, r)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The record moves by compare-and-swap on its ETag: from the same
// record, of many movers exactly one wins, and the others are told.
func TestMoveIsConditional(t *testing.T) {
	loc, _ := newBucket(t)
	st := openStore(t, loc)
	ctx := context.Background()
	key := testKey(t)
	if raw, etag, err := st.Current(ctx); err != nil || raw != nil || etag != "" {
		t.Fatalf("an empty store's record: %q %q %v", raw, etag, err)
	}
	r1 := signed(t, key, 1, "20261125T014500Z-111111111111")
	etag1, err := st.Move(ctx, r1, "")
	if err != nil {
		t.Fatal(err)
	}
	// A second first deploy: If-None-Match: * refuses it.
	if _, err := st.Move(ctx, signed(t, key, 1, "20261125T014501Z-222222222222"), ""); !errors.Is(err, ErrMoved) {
		t.Fatalf("a move onto a record that appeared meanwhile: %v, want ErrMoved", err)
	}
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Move(ctx, signed(t, key, 2, fmt.Sprintf("20261125T0146%02dZ-333333333333", i)), etag1)
		}()
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrMoved):
			t.Errorf("racer %d: %v, want ErrMoved", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing moves from one record won, want exactly 1: %v", won, racers, errs)
	}
	raw, etag2, err := st.Current(ctx)
	if err != nil || etag2 == etag1 {
		t.Fatalf("record after the race: %v (etag %s)", err, etag2)
	}
	rec, err := Verify(key.Public().(ed25519.PublicKey), raw)
	if err != nil || rec.Seq != 2 {
		t.Fatalf("the winner's record: %+v %v", rec, err)
	}
	if _, err := st.Move(ctx, signed(t, key, 3, "20261125T014700Z-444444444444"), etag2); err != nil {
		t.Errorf("a move from the current record: %v", err)
	}
}

// A store that is down is named as such within a bounded time, after
// the few attempts it was given.
func TestUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	loc := bucket.Location{Bucket: "shop-releases", Prefix: "shop/store/", Region: "us-east-1", Endpoint: "http://" + addr,
		AccessKeyID: "k", SecretAccessKey: "s"}
	st, err := Open(context.Background(), loc, bucket.Retries{Attempts: 3, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = st.Current(context.Background())
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "cannot be reached") || !strings.Contains(err.Error(), "attempts") || usererr.HintOf(err) == "" {
		t.Fatalf("an unreachable store: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("an unreachable store took %s to be named", took)
	}
	if _, err := st.Object(context.Background(), release.SumBytes(nil), 0); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Errorf("an object from an unreachable store: %v", err)
	}
}

func TestNoBucket(t *testing.T) {
	loc, _ := newBucket(t)
	loc.Bucket = "not-made"
	st := openStore(t, loc)
	_, _, err := st.Current(context.Background())
	if err == nil || !strings.Contains(err.Error(), "bucket not-made does not exist") {
		t.Fatalf("a store whose bucket does not exist: %v", err)
	}
}
