package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/klauspost/compress/zstd"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/usererr"
)

// Store is an app's release store: its bucket and prefix.
type Store struct {
	Loc bucket.Location
	c   *s3.Client
	// put and got count the bytes written and read, as stored.
	put, got atomic.Int64
}

// DefaultRetries are how often a store's requests are tried: a store
// that is down is named within about half a minute per request.
var DefaultRetries = bucket.Retries{Attempts: 5, MaxBackoff: 5 * time.Second}

// Open is the store at loc, reached with r's retries.
func Open(ctx context.Context, loc bucket.Location, r bucket.Retries) (*Store, error) {
	if err := loc.Validate(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	c, err := loc.Client(ctx, r)
	if err != nil {
		return nil, err
	}
	return &Store{Loc: loc, c: c}, nil
}

// Where names the store for messages.
func (s *Store) Where() string { return s.Loc.Where() }

// PutBytes is what this Store wrote to the bucket so far, as stored
// (compressed).
func (s *Store) PutBytes() int64 { return s.put.Load() }

// GotBytes is what it read from the bucket so far, as stored.
func (s *Store) GotBytes() int64 { return s.got.Load() }

// The keys under the prefix.
const currentName = "current"

func objectName(sum string) string   { return "objects/" + sum }
func indexName(sum string) string    { return "indexes/" + sum }
func manifestName(sum string) string { return "manifests/" + sum }
func releaseName(id string) string   { return "releases/" + id }
func specName(sum string) string     { return "specs/" + sum }

// MaxSpecSize bounds a host spec read from the store (error pages
// included).
const MaxSpecSize = 4 << 20

// ErrMissing is the cause of an error for an object the bucket lacks.
var ErrMissing = errors.New("not in the store")

// ErrDamaged is the cause of an error for an object whose content is
// not what its name says.
var ErrDamaged = errors.New("damaged")

// ErrMoved is the cause of the error of a record that was not written
// because another write moved the record first.
var ErrMoved = errors.New("the record moved meanwhile")

// fail turns an S3 error about key into one that says what it means.
func (s *Store) fail(what, key string, err error) error {
	switch {
	case bucket.IsNoBucket(err):
		return usererr.Wrap(err, "the store %s: bucket %s does not exist", s.Where(), s.Loc.Bucket).
			WithHint("make the bucket (store.bucket in hoist.yml), or name the right one")
	case bucket.IsNotFound(err):
		return fmt.Errorf("%s %s: %w", what, s.Loc.Key(key), ErrMissing)
	case bucket.IsUnreachable(err):
		return usererr.Wrap(err, "the store %s cannot be reached", s.Where()).
			WithHint("check store.endpoint and store.region and that this machine reaches them; nothing was changed")
	}
	return fmt.Errorf("%s %s: %w", what, s.Loc.Key(key), err)
}

// get reads key whole, at most limit bytes.
func (s *Store) get(ctx context.Context, what, key string, limit int64) ([]byte, string, error) {
	out, err := s.c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.Key(key))})
	if err != nil {
		return nil, "", s.fail(what, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, limit+1))
	s.got.Add(int64(len(b)))
	if err != nil {
		return nil, "", s.fail(what, key, err)
	}
	if int64(len(b)) > limit {
		return nil, "", fmt.Errorf("%s %s: more than %d bytes: %w", what, s.Loc.Key(key), limit, ErrDamaged)
	}
	return b, aws.ToString(out.ETag), nil
}

// putOpts are a write's conditions: ifMatch the ETag the key must have,
// ifNone that the key must not exist.
type putOpts struct {
	ifMatch string
	ifNone  bool
}

func (s *Store) putKey(ctx context.Context, what, key string, b []byte, o putOpts) (string, error) {
	in := &s3.PutObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.Key(key)),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))), ContentType: aws.String("application/octet-stream")}
	if o.ifMatch != "" {
		in.IfMatch = aws.String(o.ifMatch)
	}
	if o.ifNone {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := s.c.PutObject(ctx, in)
	if err != nil {
		if (o.ifMatch != "" || o.ifNone) && (bucket.IsPreconditionFailed(err) || o.ifMatch != "" && bucket.IsNotFound(err)) {
			return "", fmt.Errorf("%s %s: %w", what, s.Loc.Key(key), ErrMoved)
		}
		return "", s.fail(what, key, err)
	}
	s.put.Add(int64(len(b)))
	return aws.ToString(out.ETag), nil
}

// Has reports whether the bucket holds object sum.
func (s *Store) Has(ctx context.Context, sum string) (bool, error) {
	_, err := s.c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.Loc.Bucket), Key: aws.String(s.Loc.Key(objectName(sum)))})
	if err == nil {
		return true, nil
	}
	if bucket.IsNotFound(err) && !bucket.IsNoBucket(err) {
		return false, nil
	}
	return false, s.fail("look for object", objectName(sum), err)
}

// Objects are compressed: the content of a release compresses, and a
// store is paid by the byte put and kept. One encoder and one decoder
// serve every call (EncodeAll and DecodeAll may run at once).
var (
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(uint64(maxIndexSize)+1))
)

// compressedLimit bounds the stored size of content of size bytes:
// zstd adds a few bytes per block to what it cannot compress.
func compressedLimit(size int64) int64 { return size + size/64 + 1024 }

// decode decompresses b, which must make exactly size bytes with sha256
// sum.
func decode(b []byte, sum string, size int64) ([]byte, error) {
	data, err := decoder.DecodeAll(b, make([]byte, 0, size+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%w: %d bytes, not %d", ErrDamaged, len(data), size)
	}
	if got := release.SumBytes(data); got != sum {
		return nil, fmt.Errorf("%w: its sha256 is %.12s", ErrDamaged, got)
	}
	return data, nil
}

// PutObject writes an object, data, whose sha256 is sum.
func (s *Store) PutObject(ctx context.Context, sum string, data []byte) error {
	_, err := s.putKey(ctx, "put object", objectName(sum), encoder.EncodeAll(data, nil), putOpts{})
	return err
}

// Object reads object sum of size bytes and checks it.
func (s *Store) Object(ctx context.Context, sum string, size int64) ([]byte, error) {
	if !release.ValidSum(sum) || size < 0 || size > release.MaxObjectSize {
		return nil, fmt.Errorf("object %.12s of %d bytes: not an object of a release", sum, size)
	}
	b, _, err := s.get(ctx, "get object", objectName(sum), compressedLimit(size))
	if err != nil {
		return nil, err
	}
	data, err := decode(b, sum, size)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", s.Loc.Key(objectName(sum)), err)
	}
	return data, nil
}

// maxIndexSize bounds an index read from the store (as a host bounds
// one it is sent).
const maxIndexSize = 64 << 20

// PutIndex writes x, under the sha256 of its canonical bytes.
func (s *Store) PutIndex(ctx context.Context, x *release.Index) error {
	b := x.Marshal()
	_, err := s.putKey(ctx, "put index", indexName(release.SumBytes(b)), encoder.EncodeAll(b, nil), putOpts{})
	return err
}

// Index reads and checks the index whose sum is sum; it returns its
// canonical bytes too.
func (s *Store) Index(ctx context.Context, sum string) (*release.Index, []byte, error) {
	if !release.ValidSum(sum) {
		return nil, nil, fmt.Errorf("index %q: not a sha256", sum)
	}
	b, _, err := s.get(ctx, "get index", indexName(sum), compressedLimit(maxIndexSize))
	if err != nil {
		return nil, nil, err
	}
	data, err := decoder.DecodeAll(b, make([]byte, 0, 1<<20))
	if err == nil && release.SumBytes(data) != sum {
		err = errors.New("its sha256 is not its name's")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w: %v", s.Loc.Key(indexName(sum)), ErrDamaged, err)
	}
	x, err := release.ParseIndex(data)
	if err != nil {
		return nil, nil, fmt.Errorf("index %s: %w", s.Loc.Key(indexName(sum)), err)
	}
	return x, data, nil
}

// PutManifest writes m and returns the sha256 of what it wrote.
func (s *Store) PutManifest(ctx context.Context, m *release.Manifest) (string, error) {
	b := m.Marshal()
	sum := release.SumBytes(b)
	_, err := s.putKey(ctx, "put manifest", manifestName(sum), b, putOpts{})
	return sum, err
}

// Manifest reads and checks the manifest whose sha256 is sum.
func (s *Store) Manifest(ctx context.Context, sum string) (*release.Manifest, error) {
	if !release.ValidSum(sum) {
		return nil, fmt.Errorf("manifest %q: not a sha256", sum)
	}
	b, _, err := s.get(ctx, "get manifest", manifestName(sum), 64<<10)
	if err != nil {
		return nil, err
	}
	if release.SumBytes(b) != sum {
		return nil, fmt.Errorf("manifest %s: %w: its sha256 is not its name's", s.Loc.Key(manifestName(sum)), ErrDamaged)
	}
	m, err := release.ParseManifest(b)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", s.Loc.Key(manifestName(sum)), err)
	}
	return m, nil
}

// PutSpec writes a host spec, as encoded, and returns its sha256.
func (s *Store) PutSpec(ctx context.Context, b []byte) (string, error) {
	if len(b) > MaxSpecSize {
		return "", fmt.Errorf("put host spec: %d bytes, at most %d", len(b), MaxSpecSize)
	}
	sum := release.SumBytes(b)
	_, err := s.putKey(ctx, "put host spec", specName(sum), b, putOpts{})
	return sum, err
}

// Spec reads the host spec whose sha256 is sum, checked against it.
func (s *Store) Spec(ctx context.Context, sum string) ([]byte, error) {
	if !release.ValidSum(sum) {
		return nil, fmt.Errorf("host spec %q: not a sha256", sum)
	}
	b, _, err := s.get(ctx, "get host spec", specName(sum), MaxSpecSize)
	if err != nil {
		return nil, err
	}
	if release.SumBytes(b) != sum {
		return nil, fmt.Errorf("host spec %s: %w: its sha256 is not its name's", s.Loc.Key(specName(sum)), ErrDamaged)
	}
	return b, nil
}

// Current reads the current record as stored, with its ETag: what a
// write that replaces it names (Move). A bucket without one gives nil.
func (s *Store) Current(ctx context.Context) ([]byte, string, error) {
	b, etag, err := s.get(ctx, "get record", currentName, MaxRecordSize)
	if errors.Is(err, ErrMissing) {
		return nil, "", nil
	}
	return b, etag, err
}

// Move writes raw as the current record if the record is still the one
// whose ETag is etag ("": if there is none), and returns the new
// record's ETag. It is a conditional write (If-Match, If-None-Match:
// *): of two moves from the same record, one wins and the other gets
// ErrMoved.
func (s *Store) Move(ctx context.Context, raw []byte, etag string) (string, error) {
	o := putOpts{ifMatch: etag, ifNone: etag == ""}
	return s.putKey(ctx, "move record", currentName, raw, o)
}

// PutRelease keeps the signed record a release was published with
// (releases/ID), for a rollback to go back to without trusting what
// else the bucket holds.
func (s *Store) PutRelease(ctx context.Context, raw []byte, id string) error {
	if !release.ValidID(id) {
		return fmt.Errorf("put release record: invalid id %q", id)
	}
	_, err := s.putKey(ctx, "put release record", releaseName(id), raw, putOpts{})
	return err
}

// Release reads the signed record release id was published with; it
// wraps ErrMissing when the store never had it.
func (s *Store) Release(ctx context.Context, id string) ([]byte, error) {
	if !release.ValidID(id) {
		return nil, fmt.Errorf("release record: invalid id %q", id)
	}
	b, _, err := s.get(ctx, "get release record", releaseName(id), MaxRecordSize)
	return b, err
}

// ObjectKey is the key of object sum, for messages and tests.
func (s *Store) ObjectKey(sum string) string { return s.Loc.Key(objectName(sum)) }

// CurrentKey is the key of the current record.
func (s *Store) CurrentKey() string { return s.Loc.Key(currentName) }
