// Package bindtest starts bind9 (Debian's named) as a primary server of
// one zone that takes RFC 2136 updates signed with a TSIG key and allows
// zone transfers with it, for tests of hoist's DNS records and DNS-01
// challenges. It queries the server with a real DNS client (miekg/dns),
// so that tests check what the server answers, not what hoist believes.
// scripts/deps.sh installs bind9; under CI=true a missing named fails
// the test instead of skipping it.
package bindtest

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/hoistdev/hoist/internal/pebbletest"
	"github.com/hoistdev/hoist/internal/waittest"
)

// Options configure a server.
type Options struct {
	// Zone served, like example.test.
	Zone string
	// Listen is the IPv4 address to listen on (default 127.0.0.1); the
	// port is free and chosen, or Port.
	Listen string
	Port   int
	// Records are zone-file lines added to the zone, relative to it, like
	// "legacy IN A 192.0.2.9".
	Records []string
}

// Server is a running named.
type Server struct {
	// Addr is host:port, for RFC 2136 updates (TCP) and queries.
	Addr string
	// Zone is the zone's name without the trailing dot.
	Zone string
	// KeyName, KeyAlg and Key are the TSIG key that may update the zone
	// and transfer it (Key in base64).
	KeyName, KeyAlg, Key string

	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs named until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	bin := named(t)
	if o.Listen == "" {
		o.Listen = "127.0.0.1"
	}
	if o.Port == 0 {
		o.Port = freePort(t, o.Listen)
	}
	o.Zone = strings.TrimSuffix(o.Zone, ".")
	dir := t.TempDir()
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &Server{Addr: net.JoinHostPort(o.Listen, fmt.Sprint(o.Port)), Zone: o.Zone,
		KeyName: "hoist-test-key", KeyAlg: "hmac-sha256", Key: base64.StdEncoding.EncodeToString(secret), done: make(chan struct{})}
	zone := fmt.Sprintf("$TTL 300\n@ IN SOA ns1 hostmaster 1 3600 600 86400 60\n@ IN NS ns1\nns1 IN A %s\n%s\n", o.Listen, strings.Join(o.Records, "\n"))
	conf := fmt.Sprintf(`key "%[1]s" { algorithm %[2]s; secret "%[3]s"; };
options {
	directory "%[4]s";
	pid-file "%[4]s/named.pid";
	listen-on port %[5]d { %[6]s; };
	listen-on-v6 { none; };
	recursion no;
	dnssec-validation no;
	notify no;
};
controls { };
zone "%[7]s" {
	type primary;
	file "%[4]s/zone.db";
	update-policy { grant %[1]s zonesub ANY; };
	allow-transfer { key %[1]s; };
};
`, s.KeyName, s.KeyAlg, s.Key, dir, o.Port, o.Listen, o.Zone)
	for name, content := range map[string]string{"zone.db": zone, "named.conf": conf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "named.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-g", "-c", filepath.Join(dir, "named.conf")}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root") // the temp dir is root's
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.Stop()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			t.Logf("named log (last lines):\n%s", strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	pebbletest.WaitListening(t, s.Addr)
	// Listening on TCP comes before the zone is loaded; wait for its SOA.
	var last error
	if !waittest.PollEvery(5*time.Second, 50*time.Millisecond, func() bool { _, last = s.query("", dns.TypeSOA); return last == nil }) {
		t.Fatalf("named at %s does not serve %s within 5s: %v", s.Addr, o.Zone, last)
	}
	return s
}

// Stop ends named (a DNS server that goes away); Start's cleanup calls
// it too.
func (s *Server) Stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.done
}

// named finds the named binary.
func named(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"named", "/usr/sbin/named"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "bind9's named is not installed (apt-get install bind9; scripts/deps.sh does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Query returns the values the server answers for name (relative to the
// zone, "@" for the zone itself, or absolute with a trailing dot) and
// type, sorted; none for NXDOMAIN or no data.
func (s *Server) Query(t testing.TB, name string, typ uint16) []string {
	t.Helper()
	vals, err := s.query(name, typ)
	if err != nil {
		t.Fatalf("query %s %s at %s: %v", name, dns.TypeToString[typ], s.Addr, err)
	}
	return vals
}

func (s *Server) query(name string, typ uint16) ([]string, error) {
	m := new(dns.Msg)
	m.SetQuestion(s.FQDN(name), typ)
	c := &dns.Client{Timeout: 2 * time.Second}
	in, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		return nil, err
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("answer %s", dns.RcodeToString[in.Rcode])
	}
	var out []string
	for _, rr := range in.Answer {
		if rr.Header().Rrtype != typ {
			continue
		}
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.CNAME:
			out = append(out, v.Target)
		case *dns.TXT:
			out = append(out, strings.Join(v.Txt, ""))
		default:
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	slices.Sort(out)
	return out, nil
}

// FQDN is name made absolute in the zone.
func (s *Server) FQDN(name string) string {
	switch {
	case name == "" || name == "@":
		return s.Zone + "."
	case strings.HasSuffix(name, "."):
		return name
	}
	return name + "." + s.Zone + "."
}

// Env is the environment that gives hoist this server's key for the
// rfc2136 provider.
func (s *Server) Env() []string {
	return []string{"RFC2136_SERVER=" + s.Addr, "RFC2136_KEY_NAME=" + s.KeyName, "RFC2136_KEY_ALG=" + s.KeyAlg, "RFC2136_KEY=" + s.Key}
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
