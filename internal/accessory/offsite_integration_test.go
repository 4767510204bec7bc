//go:build integration

package accessory

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/bucket"
	"github.com/hoistdev/hoist/internal/hostproto"
	"github.com/hoistdev/hoist/internal/kumotest"
)

// Backups leave the host encrypted to the operator's recipient; when
// the bucket stops answering mid-upload the local backups stand, the
// failure is recorded, and the next run copies what the bucket lacks.
func TestOffsiteRoundTripAndCatchUp(t *testing.T) {
	endpoint := kumotest.Start(t)
	ctx := context.Background()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	cut := kumotest.StartCutter(t, "127.0.0.1", strings.TrimPrefix(endpoint, "http://"), 64<<10)
	s := pgSpec()
	s.Offsite = &hostproto.Offsite{Location: bucket.Location{Bucket: "shop-backups", Prefix: "shop/db/", Region: "us-east-1", Endpoint: "http://" + cut.Addr(),
		AccessKeyID: "kumo", SecretAccessKey: "kumo"}, Recipient: id.Recipient().String(), Keep: 2}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	c, err := offsiteClient(ctx, s.Offsite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("shop-backups")}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := Place{Dir: dir, Backups: filepath.Join(dir, "backups")}
	os.MkdirAll(p.Backups, 0o700)
	write := func(name string, size int) []byte {
		body := make([]byte, size)
		rand.Read(body)
		b := makeBackup(t, "-- "+string(bytes.ToValidUTF8(body, nil))+"\n"+dump)
		if err := os.WriteFile(filepath.Join(p.Backups, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
		return b
	}
	first := write("db-20261201T030000Z.sql.gz", 1000)
	write("db-20261201T030000Z-before-restore.sql.gz", 1000) // not copied
	done, err := SyncOffsite(ctx, s, p)
	if err != nil || len(done) != 1 || done[0] != "db-20261201T030000Z.sql.gz.age" {
		t.Fatalf("first sync: %v %v", done, err)
	}
	// Encrypted: only the identity opens it, and it is the backup.
	var enc bytes.Buffer
	if err := FetchOffsite(ctx, s, done[0], &enc); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(enc.Bytes(), first[20:60]) {
		t.Error("the object holds the backup's bytes in the clear")
	}
	r, err := age.Decrypt(&enc, id)
	if err != nil {
		t.Fatalf("decrypt with the operator's identity: %v", err)
	}
	if got, _ := io.ReadAll(r); !bytes.Equal(got, first) {
		t.Error("the decrypted object is not the backup")
	}

	// The bucket stops answering in the middle of the next upload.
	cut.Cutting.Store(true)
	second := write("db-20261202T030000Z.sql.gz", 512<<10)
	if _, err := SyncOffsite(ctx, s, p); err == nil {
		t.Fatal("a sync through a cut connection succeeded")
	}
	rec, _ := ReadRecord(p)
	if rec.LastOffsite == nil || rec.LastOffsite.Error == "" || !strings.Contains(rec.LastOffsite.Error, "db-20261202T030000Z.sql.gz") {
		t.Errorf("the failure is not recorded with the backup it could not copy: %+v", rec.LastOffsite)
	}
	if b, err := os.ReadFile(filepath.Join(p.Backups, "db-20261202T030000Z.sql.gz")); err != nil || !bytes.Equal(b, second) {
		t.Error("the local backup does not stand after the failed copy")
	}
	if ents, _ := os.ReadDir(p.Backups); len(ents) != 3 {
		t.Errorf("left in the backups: %v", ents)
	}

	// The next run catches up, and keeps the newest 2.
	cut.Cutting.Store(false)
	write("db-20261203T030000Z.sql.gz", 1000)
	done, err = SyncOffsite(ctx, s, p)
	if err != nil || strings.Join(done, " ") != "db-20261202T030000Z.sql.gz.age db-20261203T030000Z.sql.gz.age" {
		t.Fatalf("the run after the failure: %v %v", done, err)
	}
	list, err := ListOffsite(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range list {
		names = append(names, b.File)
	}
	if strings.Join(names, " ") != "db-20261202T030000Z.sql.gz.age db-20261203T030000Z.sql.gz.age" {
		t.Errorf("the bucket holds %v, want the newest 2", names)
	}
	if rec, _ := ReadRecord(p); rec.LastOffsite == nil || rec.LastOffsite.Error != "" {
		t.Errorf("after catching up: %+v", rec.LastOffsite)
	}
}
