package accessory

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/bucket"
)

// Offsite is where a PostgreSQL accessory's backups go off the host:
// an S3-compatible bucket. Each backup is encrypted on the host, to
// the age recipient the operator holds the identity of, before it
// leaves: whoever reads the bucket reads nothing, and the host itself
// cannot read back what it wrote.
type Offsite struct {
	// Location is the bucket; its prefix is APP/NAME/ by default, and
	// its credentials, when hoist secrets hold them, the operator's.
	bucket.Location
	Recipient string `json:"recipient"`
	// Keep is how many backups the bucket keeps, the newest.
	Keep int `json:"keep"`
}

// OffsiteExt ends every object's key: an age-encrypted backup.
const OffsiteExt = ".age"

// Validate checks an off-host target received from the client.
func (o *Offsite) Validate() error {
	if err := o.Location.Validate(); err != nil {
		return err
	}
	if o.Keep < 1 {
		return fmt.Errorf("invalid keep %d", o.Keep)
	}
	if _, err := age.ParseX25519Recipient(o.Recipient); err != nil {
		return fmt.Errorf("invalid age recipient %q: %w", o.Recipient, err)
	}
	return nil
}

func (o *Offsite) where() string { return o.Where() }

// client is the S3 client of the target. Few attempts: a bucket that
// does not answer is reported, and the next run catches up.
func (o *Offsite) client(ctx context.Context) (*s3.Client, error) {
	c, err := o.Client(ctx, bucket.Retries{Attempts: 3})
	if err != nil {
		return nil, fmt.Errorf("off-host backups: %w", err)
	}
	return c, nil
}

// listOffsite lists the target's backups, oldest first.
func (o *Offsite) list(ctx context.Context, c *s3.Client) ([]BackupInfo, error) {
	var out []BackupInfo
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(o.Bucket), Prefix: aws.String(o.Prefix)})
	for i := 0; pages.HasMorePages() && i < 1000; i++ {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", o.where(), err)
		}
		for _, obj := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), o.Prefix)
			if strings.Contains(name, "/") || !strings.HasSuffix(name, OffsiteExt) || !ValidBackupFile(strings.TrimSuffix(name, OffsiteExt)) {
				continue
			}
			out = append(out, BackupInfo{File: name, Size: aws.ToInt64(obj.Size), Created: aws.ToTime(obj.LastModified).UTC(), Kind: KindOffsite})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File }) // names are timestamped
	return out, nil
}

// KindOffsite is a backup in the off-host bucket.
const KindOffsite = "offsite"

// ListOffsite lists the accessory's backups in its bucket.
func ListOffsite(ctx context.Context, s *Spec) ([]BackupInfo, error) {
	if s.Offsite == nil {
		return nil, nil
	}
	c, err := s.Offsite.client(ctx)
	if err != nil {
		return nil, err
	}
	return s.Offsite.list(ctx, c)
}

// SyncOffsite copies every backup of the accessory's own that the
// bucket lacks into it, encrypted, oldest first — so a run after one
// that could not reach the bucket catches up — then keeps the newest
// Keep there. It records the outcome and returns the objects written.
func SyncOffsite(ctx context.Context, s *Spec, p Place) ([]string, error) {
	o := s.Offsite
	if o == nil {
		return nil, nil
	}
	done, err := o.sync(ctx, p)
	now := time.Now().UTC().Truncate(time.Second)
	if rerr := updateRecord(p, func(r *Record) {
		run := &Run{At: now, File: strings.Join(done, " ")}
		if err != nil {
			run.Error = err.Error()
		}
		r.LastOffsite = run
	}); err == nil {
		err = rerr
	}
	return done, err
}

func (o *Offsite) sync(ctx context.Context, p Place) ([]string, error) {
	c, err := o.client(ctx)
	if err != nil {
		return nil, err
	}
	have, err := o.list(ctx, c)
	if err != nil {
		return nil, err
	}
	local, err := ListBackups(p.Backups)
	if err != nil {
		return nil, err
	}
	there := map[string]bool{}
	for _, b := range have {
		there[b.File] = true
	}
	var done []string
	for _, b := range local {
		if b.Kind != KindBackup || there[b.File+OffsiteExt] {
			continue
		}
		if err := o.upload(ctx, c, p, b.File); err != nil {
			return done, err
		}
		done = append(done, b.File+OffsiteExt)
		have = append(have, BackupInfo{File: b.File + OffsiteExt})
	}
	// The newest Keep of the accessory's own stay.
	var own []string
	for _, b := range have {
		if kindOf(strings.TrimSuffix(b.File, OffsiteExt)) == KindBackup {
			own = append(own, b.File)
		}
	}
	slices.Sort(own)
	for _, f := range own[:max(0, len(own)-o.Keep)] {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + f)}); err != nil {
			return done, fmt.Errorf("prune %s%s: %w", o.where(), f, err)
		}
	}
	return done, nil
}

// upload encrypts backup file into a temporary file beside it (a
// request body S3 can send again on a retry), and puts it.
func (o *Offsite) upload(ctx context.Context, c *s3.Client, p Place, file string) error {
	rcpt, err := age.ParseX25519Recipient(o.Recipient)
	if err != nil {
		return err
	}
	in, err := os.Open(filepath.Join(p.Backups, file))
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(p.Backups, ".offsite-*")
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	w, err := age.Encrypt(tmp, rcpt)
	if err != nil {
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("encrypt %s: %w", file, err)
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + file + OffsiteExt),
		Body: tmp, ContentLength: aws.Int64(size), ContentType: aws.String("application/octet-stream")})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", file, o.where(), err)
	}
	return nil
}

// FetchOffsite writes object file of the bucket, still encrypted, to
// w: only the operator's identity opens it.
func FetchOffsite(ctx context.Context, s *Spec, file string, w io.Writer) error {
	o := s.Offsite
	if o == nil {
		return fmt.Errorf("accessory %s has no off-host backups (backup.offsite in hoist.yml)", s.Name)
	}
	if !strings.HasSuffix(file, OffsiteExt) || !ValidBackupFile(strings.TrimSuffix(file, OffsiteExt)) {
		return fmt.Errorf("%q is not an off-host backup's name", file)
	}
	c, err := o.client(ctx)
	if err != nil {
		return err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + file)})
	if err != nil {
		return fmt.Errorf("get %s%s: %w", o.where(), file, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(w, out.Body); err != nil {
		return fmt.Errorf("get %s%s: %w", o.where(), file, err)
	}
	return nil
}
