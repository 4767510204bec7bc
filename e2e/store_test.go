//go:build lab

package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/hoistdev/hoist/internal/deploy"
	"github.com/hoistdev/hoist/internal/host"
	"github.com/hoistdev/hoist/internal/kumotest"
	"github.com/hoistdev/hoist/internal/lab"
	"github.com/hoistdev/hoist/internal/release"
	"github.com/hoistdev/hoist/internal/signkey"
	"github.com/hoistdev/hoist/internal/store"
	"github.com/hoistdev/hoist/internal/waittest"
)

// storeStatusJSON is what `hoist store status --json` prints.
type storeStatusJSON struct {
	Record *struct {
		Release string `json:"release"`
		Seq     uint64 `json:"seq"`
		Op      string `json:"op"`
	} `json:"record"`
	Signer  string `json:"signer"`
	Trusted bool   `json:"trusted"`
	Error   string `json:"error"`
}

// localIndex is the index this machine packed release id with.
func localIndex(t *testing.T, app, id string) *release.Index {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(work, "cache", "releases", app, id+".*.index.json"))
	if len(paths) != 1 {
		t.Fatalf("no local index of %s: %v", id, paths)
	}
	b, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	x, err := release.ParseIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// TestDeployThroughTheStore is issue 22's release store on two lab
// hosts, with a bucket in kumo on the lab's bridge: the hosts fetch
// each release from the bucket, a one-line change puts a few KiB there,
// a rollback moves the record back; a record signed by another key is
// refused by the hosts (and a deploy with another key by this
// machine), and a release whose objects were damaged in the bucket is
// refused before anything starts on the host that would fetch them.
func TestDeployThroughTheStore(t *testing.T) {
	hosts := needLab(t)
	addr := netip.MustParseAddr(hosts[0]).As4()
	addr[3] = 1
	endpoint := kumotest.StartOn(t, netip.AddrFrom4(addr).String())
	ctx := context.Background()
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.BaseEndpoint = aws.String(endpoint); o.UsePathStyle = true })
	const bucketName = "stored-releases"
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucketName)}); err != nil {
		t.Fatal(err)
	}
	const app = "stored"
	a := newApp(t, app, 3750, hosts, "")
	pubLine := strings.TrimSpace(mustHoist(t, a.dir, "store", "key"))
	a.writeConfig(t, hosts, fmt.Sprintf(`store:
  bucket: %s
  endpoint: %s
  public_key: %s
  access_key_secret: STORE_KEY_ID
  secret_key_secret: STORE_SECRET
`, bucketName, endpoint, pubLine))
	a.commit(t, "a release store")
	mustHoist(t, a.dir, "secrets", "set", "STORE_KEY_ID", "kumo")
	mustHoist(t, a.dir, "secrets", "set", "STORE_SECRET", "kumo")
	mustHoist(t, a.dir, "setup")
	status := func() storeStatusJSON {
		t.Helper()
		c, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		stdout, stderr, _ := hoist(c, a.dir, "store", "status", "--json")
		var st storeStatusJSON
		if err := json.Unmarshal([]byte(stdout), &st); err != nil {
			t.Fatalf("store status --json: %v\n%s%s", err, stdout, stderr)
		}
		return st
	}

	out, stderr, err := deployJSON(t, a.dir)
	if err != nil {
		t.Fatalf("first deploy: %v\n%s", err, stderr)
	}
	r1 := out.Release
	for _, h := range out.Hosts {
		if h.Transfer == nil || h.Transfer.From != "store" || h.Transfer.Sent != 0 {
			t.Errorf("%s: transfer %+v, want it fetched from the store", h.Host, h.Transfer)
		}
	}
	if s := out.Store; s == nil || !s.Moved || s.Current != r1 || s.Objects == 0 {
		t.Fatalf("the first deploy's store report: %+v\n%s", out.Store, stderr)
	}
	a.wantServed(t, hosts, r1)
	verifyOnHosts(t, app, r1, hosts)

	var r2 string
	t.Run("a one-line change puts a few KiB", func(t *testing.T) {
		a.change(t)
		out, stderr, err := deployJSON(t, a.dir)
		if err != nil {
			t.Fatalf("deploy: %v\n%s", err, stderr)
		}
		r2 = out.Release
		s := out.Store
		size := localIndex(t, app, r2).ContentSize()
		t.Logf("a one-line change put %d objects, %d bytes (objects, index, manifest, records) for a release of %d bytes; %d objects were there",
			s.Objects, s.PutBytes, size, s.Skipped)
		if s.PutBytes > 256<<10 || s.Objects == 0 || s.Skipped == 0 || !s.Moved {
			t.Errorf("the store report %+v: want a few KiB put for a %d-byte release", s, size)
		}
		for _, h := range out.Hosts {
			if tr := h.Transfer; tr == nil || tr.From != "store" || tr.Fetched > 256<<10 {
				t.Errorf("%s: transfer %+v, want what changed only, from the store", h.Host, tr)
			}
		}
		a.wantServed(t, hosts, r2)
		verifyOnHosts(t, app, r2, hosts)
		if st := status(); !st.Trusted || st.Record == nil || st.Record.Release != r2 || st.Record.Op != store.OpDeploy {
			t.Errorf("store status after the deploy: %+v", st)
		}
	})

	t.Run("rollback moves the record back", func(t *testing.T) {
		mustHoist(t, a.dir, "rollback")
		a.wantServed(t, hosts, r1)
		if st := status(); !st.Trusted || st.Record == nil || st.Record.Release != r1 || st.Record.Op != store.OpRollback {
			t.Errorf("store status after the rollback: %+v", st)
		}
	})

	t.Run("a record signed by another key is refused", func(t *testing.T) {
		got, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucketName), Key: aws.String(app + "/store/current")})
		if err != nil {
			t.Fatal(err)
		}
		var raw bytes.Buffer
		raw.ReadFrom(got.Body)
		got.Body.Close()
		rec, _, err := store.Parse(raw.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		// Someone who can write the bucket points the record at the
		// release they like, signed with their own key.
		otherFile, other, _ := signkey.GenerateKey("mallory")
		rec.Release, rec.Seq, rec.By = r2, rec.Seq+1, "mallory"
		forged, err := store.Sign(other, rec)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucketName), Key: aws.String(app + "/store/current"), Body: bytes.NewReader(forged)}); err != nil {
			t.Fatal(err)
		}
		otherFP, _ := signkey.Fingerprint(other.Public().(ed25519.PublicKey))
		trusted, _ := signkey.ParsePublicKey(pubLine)
		trustedFP, _ := signkey.Fingerprint(trusted)
		// A host that reads the store's record itself refuses it.
		var stdout, stderrb bytes.Buffer
		req := `{"app":"` + app + `","args":{}}` + "\n"
		err = dialLab(t, hosts[1]).Run(ctx, host.BinPath+" host store-fetch", strings.NewReader(req), &stdout, &stderrb)
		if err == nil || !strings.Contains(stdout.String(), "is signed by key "+otherFP) || !strings.Contains(stdout.String(), trustedFP) {
			t.Errorf("a host fetching the forged record: %v\n%s%s", err, stdout.String(), stderrb.String())
		}
		if st := status(); st.Trusted || st.Signer != otherFP || !strings.Contains(st.Error, "not trusted") {
			t.Errorf("store status of the forged record: %+v", st)
		}
		a.wantServed(t, hosts, r1)
		// This machine, given the other key, refuses to deploy with it.
		keyFile := filepath.Join(t.TempDir(), "other.key")
		os.WriteFile(keyFile, otherFile, 0o600)
		c, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		_, stderr, err := hoist(c, a.dir, "deploy", "--store-key", keyFile)
		if err == nil || !strings.Contains(stderr, "is not the one store.public_key names") {
			t.Errorf("a deploy signed with another key: %v\n%s", err, stderr)
		}
	})

	t.Run("a damaged object is refused before anything starts", func(t *testing.T) {
		// The next release reaches the first host only; then what the
		// second lacks of it is damaged in the bucket.
		a.change(t)
		out, stderr, err := deployJSON(t, a.dir, "--host", hosts[0])
		if err != nil {
			t.Fatalf("deploy to %s: %v\n%s", hosts[0], err, stderr)
		}
		r3 := out.Release
		if !strings.Contains(stderr, "is not one this app's key signed") {
			t.Errorf("the deploy did not say it replaced the forged record:\n%s", stderr)
		}
		have := map[string]bool{}
		for _, id := range []string{r1, r2} {
			for _, o := range localIndex(t, app, id).Objects() {
				have[o.Sum] = true
			}
		}
		damaged := 0
		for _, o := range localIndex(t, app, r3).Objects() {
			if have[o.Sum] {
				continue
			}
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucketName), Key: aws.String(app + "/store/objects/" + o.Sum),
				Body: bytes.NewReader([]byte("their code"))}); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
		if damaged == 0 {
			t.Fatal("r3 has no object that the second host lacks")
		}
		out, stderr, err = deployJSON(t, a.dir)
		if err == nil {
			t.Fatalf("a deploy whose objects are damaged went through\n%s", stderr)
		}
		bad := out.Hosts[1]
		if bad.Status != deploy.StatusTransferFailed || !strings.Contains(bad.Error, "refused release "+r3) || !strings.Contains(bad.Error, "damaged") {
			t.Errorf("%s: %s: %s, want the release refused as damaged", bad.Host, bad.Status, bad.Error)
		}
		if got := onHost(t, hosts[1], "ls /var/lib/hoist/"+app+"/releases/"); strings.Contains(got, r3) {
			t.Errorf("the damaged release is on %s all the same:\n%s", hosts[1], got)
		}
		a.wantServed(t, hosts[1:], r1)
		a.wantServed(t, hosts[:1], r3)
		// --full puts every object again, and the host takes it.
		out, stderr, err = deployJSON(t, a.dir, "--full")
		if err != nil {
			t.Fatalf("deploy --full: %v\n%s", err, stderr)
		}
		a.wantServed(t, hosts, r3)
		verifyOnHosts(t, app, r3, hosts)
	})
	t.Run("a host that missed a deploy catches up when it boots", func(t *testing.T) {
		o := lab.Options{Name: labName, KeyPath: filepath.Join(work, "home", "lab", "id_ed25519"), KnownHostsPath: filepath.Join(work, "home", "known_hosts")}
		if err := lab.PowerCut(o, hosts[1]); err != nil {
			t.Fatal(err)
		}
		// While it is down the next release goes to the other host, and
		// the store's record to it.
		a.change(t)
		out, stderr, err := deployJSON(t, a.dir, "--host", hosts[0])
		if err != nil {
			t.Fatalf("deploy to %s: %v\n%s", hosts[0], err, stderr)
		}
		r4 := out.Release
		if st := status(); st.Record == nil || st.Record.Release != r4 {
			t.Fatalf("the store's record after the deploy: %+v, want %s", st.Record, r4)
		}
		// Booted again, nobody pushing: its boot unit starts the release
		// it had, its store-sync unit switches it to the store's.
		mustHoist(t, "", "lab", "up", "--name", labName, "--hosts", "2")
		waittest.Poll(3*time.Minute, func() bool { return a.served(hosts[1]) == "hello from release "+r4 })
		a.wantServed(t, hosts, r4)
		verifyOnHosts(t, app, r4, hosts[1:])
		if got := onHost(t, hosts[1], "tail -n 3 /var/lib/hoist/"+app+"/audit.log"); !strings.Contains(got, `"op":"store-sync"`) || !strings.Contains(got, r4) {
			t.Errorf("the host's audit trail does not record the switch:\n%s", got)
		}
	})
}
