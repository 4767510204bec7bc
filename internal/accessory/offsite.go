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
	"github.com/hoistdev/hoist/internal/hostproto"
)

// offsiteClient is the S3 client of the target. Few attempts: a bucket that
// does not answer is reported, and the next run catches up.
func offsiteClient(ctx context.Context, o *hostproto.Offsite) (*s3.Client, error) {
	c, err := o.Client(ctx, bucket.Retries{Attempts: 3})
	if err != nil {
		return nil, fmt.Errorf("off-host backups: %w", err)
	}
	return c, nil
}

// offsiteList lists the target's backups, oldest first.
func offsiteList(ctx context.Context, o *hostproto.Offsite, c *s3.Client) ([]hostproto.BackupInfo, error) {
	var out []hostproto.BackupInfo
	pages := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(o.Bucket), Prefix: aws.String(o.Prefix)})
	for i := 0; pages.HasMorePages() && i < 1000; i++ {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", o.Where(), err)
		}
		for _, obj := range page.Contents {
			name := strings.TrimPrefix(aws.ToString(obj.Key), o.Prefix)
			if strings.Contains(name, "/") || !strings.HasSuffix(name, hostproto.OffsiteExt) || !hostproto.ValidBackupFile(strings.TrimSuffix(name, hostproto.OffsiteExt)) {
				continue
			}
			out = append(out, hostproto.BackupInfo{File: name, Size: aws.ToInt64(obj.Size), Created: aws.ToTime(obj.LastModified).UTC(), Kind: KindOffsite})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].File < out[j].File }) // names are timestamped
	return out, nil
}

// KindOffsite is a backup in the off-host bucket.
const KindOffsite = "offsite"

// ListOffsite lists the accessory's backups in its bucket.
func ListOffsite(ctx context.Context, s *hostproto.AccessorySpec) ([]hostproto.BackupInfo, error) {
	if s.Offsite == nil {
		return nil, nil
	}
	c, err := offsiteClient(ctx, s.Offsite)
	if err != nil {
		return nil, err
	}
	return offsiteList(ctx, s.Offsite, c)
}

// SyncOffsite copies every backup of the accessory's own that the
// bucket lacks into it, encrypted, oldest first — so a run after one
// that could not reach the bucket catches up — then keeps the newest
// Keep there. It records the outcome and returns the objects written.
func SyncOffsite(ctx context.Context, s *hostproto.AccessorySpec, p Place) ([]string, error) {
	o := s.Offsite
	if o == nil {
		return nil, nil
	}
	done, err := offsiteSync(ctx, o, p)
	now := time.Now().UTC().Truncate(time.Second)
	if rerr := updateRecord(p, func(r *Record) {
		run := &hostproto.BackupRun{At: now, File: strings.Join(done, " ")}
		if err != nil {
			run.Error = err.Error()
		}
		r.LastOffsite = run
	}); err == nil {
		err = rerr
	}
	return done, err
}

func offsiteSync(ctx context.Context, o *hostproto.Offsite, p Place) ([]string, error) {
	c, err := offsiteClient(ctx, o)
	if err != nil {
		return nil, err
	}
	have, err := offsiteList(ctx, o, c)
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
		if b.Kind != KindBackup || there[b.File+hostproto.OffsiteExt] {
			continue
		}
		if err := offsiteUpload(ctx, o, c, p, b.File); err != nil {
			return done, err
		}
		done = append(done, b.File+hostproto.OffsiteExt)
		have = append(have, hostproto.BackupInfo{File: b.File + hostproto.OffsiteExt})
	}
	// The newest Keep of the accessory's own stay.
	var own []string
	for _, b := range have {
		if kindOf(strings.TrimSuffix(b.File, hostproto.OffsiteExt)) == KindBackup {
			own = append(own, b.File)
		}
	}
	slices.Sort(own)
	for _, f := range own[:max(0, len(own)-o.Keep)] {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + f)}); err != nil {
			return done, fmt.Errorf("prune %s%s: %w", o.Where(), f, err)
		}
	}
	return done, nil
}

// offsiteUpload encrypts backup file into a temporary file beside it (a
// request body S3 can send again on a retry), and puts it.
func offsiteUpload(ctx context.Context, o *hostproto.Offsite, c *s3.Client, p Place, file string) error {
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
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + file + hostproto.OffsiteExt),
		Body: tmp, ContentLength: aws.Int64(size), ContentType: aws.String("application/octet-stream")})
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", file, o.Where(), err)
	}
	return nil
}

// FetchOffsite writes object file of the bucket, still encrypted, to
// w: only the operator's identity opens it.
func FetchOffsite(ctx context.Context, s *hostproto.AccessorySpec, file string, w io.Writer) error {
	o := s.Offsite
	if o == nil {
		return fmt.Errorf("accessory %s has no off-host backups (backup.offsite in hoist.yml)", s.Name)
	}
	if !strings.HasSuffix(file, hostproto.OffsiteExt) || !hostproto.ValidBackupFile(strings.TrimSuffix(file, hostproto.OffsiteExt)) {
		return fmt.Errorf("%q is not an off-host backup's name", file)
	}
	c, err := offsiteClient(ctx, o)
	if err != nil {
		return err
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(o.Bucket), Key: aws.String(o.Prefix + file)})
	if err != nil {
		return fmt.Errorf("get %s%s: %w", o.Where(), file, err)
	}
	defer out.Body.Close()
	if _, err := io.Copy(w, out.Body); err != nil {
		return fmt.Errorf("get %s%s: %w", o.Where(), file, err)
	}
	return nil
}
