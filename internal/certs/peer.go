package certs

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/hoistdev/hoist/internal/hostproto"
)

// The peer channel joins the proxies of an app's hosts, so that one of
// them (the issuer) obtains each certificate and the others copy it. It
// is HTTPS on its own port (DefaultPeerPort), on the addresses the
// issuer's plan names (the one its peers dial), made from the app's
// peer secret, which hoist setup gives every host of the app over SSH;
// nothing secret crosses the wire:
//
//   - the copier names the app in the server name (peerSNI) and presents
//     a certificate whose key is derived from the secret; the issuer
//     completes no handshake without it;
//   - the issuer presents one certificate of its own for every server
//     name, and checks every client against a key, the app's or one
//     nobody holds, so that a stranger sees the same handshake and the
//     same refusal whichever app or name it asks about;
//   - the issuer proves it holds the secret too in each answer, with a
//     MAC of the TLS session's exported keying material (peerProof):
//     bound to the session, it cannot be replayed or relayed, and the
//     copier trusts no answer without it.
//
// The issuer answers
//
//	GET /v1/certificates/{name}        the certificate and key (JSON)
//	GET /v1/challenges/{name}/{token}  an HTTP-01 key authorization, so
//	                                   that a copier reached by the CA
//	                                   can answer the challenge
//
// for the names its plan says it obtains for that app (or that it took
// over), and nothing else; and a copier answers
//
//	GET /v1/renewed/{name}             the issuer renewed name: fetch it

// DefaultPeerPort is where the proxies of an app's hosts reach each other.
const DefaultPeerPort = 9443

// peerSNI is the server name a copier sends: it picks the app.
func peerSNI(app string) string { return app + ".peer.hoist.invalid" }

// peerIdentity is the certificate a copier of app presents, and its
// public key: an Ed25519 key derived from the secret. It is made once
// per app and secret, so that a stranger's handshakes cost the issuer
// no more than a lookup.
func peerIdentity(app, secret string) (tls.Certificate, ed25519.PublicKey, error) {
	key := app + "\x00" + secret
	identitiesMu.Lock()
	defer identitiesMu.Unlock()
	if id, ok := identities[key]; ok {
		return id.cert, id.pub, nil
	}
	cert, pub, err := makePeerIdentity(app, secret)
	if err == nil {
		if len(identities) > 64 {
			clear(identities) // secrets change with each setup: drop the old
		}
		identities[key] = identity{cert, pub}
	}
	return cert, pub, err
}

type identity struct {
	cert tls.Certificate
	pub  ed25519.PublicKey
}

var (
	identitiesMu sync.Mutex
	identities   = map[string]identity{}
)

func makePeerIdentity(app, secret string) (tls.Certificate, ed25519.PublicKey, error) {
	seed, err := peerKey(app, secret, app)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return selfSignedEd25519(ed25519.NewKeyFromSeed(seed), "hoist peer "+app)
}

// peerKey derives 32 bytes from app's secret for one use, named by info.
func peerKey(app, secret, info string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(raw) < 16 {
		return nil, fmt.Errorf("peer secret of %s: not base64 of at least 16 bytes", app)
	}
	return hkdf.Key(sha256.New, raw, []byte("hoist peer channel v1"), info, 32)
}

func selfSignedEd25519(priv ed25519.PrivateKey, cn string) (tls.Certificate, ed25519.PublicKey, error) {
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, pub, nil
}

// peerEnds are what the issuer shows every client, the same whatever
// it asks: a certificate made for this process, and a key nobody holds
// to check the clients of apps it does not serve against.
type peerEnds struct {
	cert   tls.Certificate
	nobody ed25519.PublicKey
}

func newPeerEnds() (peerEnds, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return peerEnds{}, err
	}
	cert, _, err := selfSignedEd25519(priv, "hoist peer")
	if err != nil {
		return peerEnds{}, err
	}
	nobody, _, err := ed25519.GenerateKey(rand.Reader) // its private key is dropped
	if err != nil {
		return peerEnds{}, err
	}
	return peerEnds{cert: cert, nobody: nobody}, nil
}

// peerProofHeader carries the issuer's proof that it holds the secret.
const peerProofHeader = "Hoist-Peer-Proof"

// peerProof is the issuer's proof on one TLS session that it holds
// app's secret: a MAC of the session's exported keying material, with
// a key derived for this use alone.
func peerProof(app, secret string, cs *tls.ConnectionState) (string, error) {
	key, err := peerKey(app, secret, "issuer proof "+app)
	if err != nil {
		return "", err
	}
	ekm, err := cs.ExportKeyingMaterial("EXPORTER-hoist-peer-issuer", nil, 32)
	if err != nil {
		return "", err
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(ekm)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// pinned accepts only a peer whose certificate carries pub.
func pinned(pub ed25519.PublicKey) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return errors.New("the peer sent no certificate")
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return err
		}
		if k, ok := c.PublicKey.(ed25519.PublicKey); !ok || !k.Equal(pub) {
			return errors.New("the peer does not hold the app's peer secret")
		}
		return nil
	}
}

// peerCert is a certificate as the issuer hands it to a copier.
type peerCert struct {
	Chain      string    `json:"chain"` // PEM
	Key        string    `json:"key"`   // PEM
	ObtainedBy string    `json:"obtained_by"`
	ObtainedAt time.Time `json:"obtained_at,omitzero"`
}

// servePeers serves the peer channel on ln until it is closed.
func (m *Manager) servePeers(ln net.Listener) error {
	conf := &tls.Config{MinVersion: tls.VersionTLS13, GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		// The same certificate and the same check for every server name:
		// what an app's copiers must prove is all that differs.
		want := m.peer.nobody
		if p := m.issuerPlan(strings.TrimSuffix(hello.ServerName, ".peer.hoist.invalid")); p != nil {
			if _, pub, err := peerIdentity(p.App, p.PeerSecret); err == nil {
				want = pub
			}
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{m.peer.cert},
			ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: pinned(want)}, nil
	}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/certificates/{name}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := m.peerName(r)
		if !ok {
			http.Error(w, "this host does not obtain that name for the app", http.StatusNotFound)
			return
		}
		pc, err := m.export(name)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(pc)
	})
	mux.HandleFunc("GET /v1/renewed/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !m.peerRenewed(strings.TrimSuffix(r.TLS.ServerName, ".peer.hoist.invalid"), r.PathValue("name")) {
			http.Error(w, "this host does not copy that name for the app", http.StatusNotFound)
		}
	})
	mux.HandleFunc("GET /v1/challenges/{name}/{token}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := m.peerName(r)
		ch, active := certmagic.GetACMEChallenge(name)
		if !ok || !active || ch.Token != r.PathValue("token") {
			http.Error(w, "no such challenge", http.StatusNotFound)
			return
		}
		m.track.seen(name, "http-01, answered by a peer")
		io.WriteString(w, ch.KeyAuthorization)
	})
	// Only a copier that proved it holds the app's secret gets here;
	// every answer to it carries the issuer's proof.
	prove := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := m.issuerPlan(strings.TrimSuffix(r.TLS.ServerName, ".peer.hoist.invalid"))
		if p == nil {
			http.Error(w, "no such app here", http.StatusNotFound) // its plan went since the handshake
			return
		}
		proof, err := peerProof(p.App, p.PeerSecret, r.TLS)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set(peerProofHeader, proof)
		mux.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: prove, TLSConfig: conf, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10, ErrorLog: zap.NewStdLog(m.logger)}
	return srv.ServeTLS(ln, "", "")
}

// peerName is the name a peer request asks for, if this host obtains it
// for the app the connection is for.
func (m *Manager) peerName(r *http.Request) (string, bool) {
	name := r.PathValue("name")
	p := m.issuerPlan(strings.TrimSuffix(r.TLS.ServerName, ".peer.hoist.invalid"))
	if p == nil {
		return name, false
	}
	return name, slices.ContainsFunc(p.Names, func(n hostproto.CertPlanName) bool { return n.Name == name && (n.From == "" || m.tookOver(name)) })
}

// export is the certificate this host serves for name, with its key.
func (m *Manager) export(name string) (peerCert, error) {
	c, ok := m.served(name)
	if !ok {
		return peerCert{}, fmt.Errorf("no certificate for %s yet", name)
	}
	var chain strings.Builder
	for _, der := range c.Certificate.Certificate {
		pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.Certificate.PrivateKey)
	if err != nil {
		return peerCert{}, fmt.Errorf("export key of %s: %w", name, err)
	}
	ob := m.track.get(name)
	return peerCert{Chain: chain.String(), Key: string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key})),
		ObtainedBy: ob.By, ObtainedAt: ob.At}, nil
}

// peerGet fetches path from the issuer at from, for app.
func peerGet(ctx context.Context, from, app, secret, path string) ([]byte, error) {
	cert, _, err := peerIdentity(app, secret)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, ServerName: peerSNI(app), Certificates: []tls.Certificate{cert},
			// The issuer's certificate is the same for every app; it
			// proves it holds the secret in its answer (peerProof).
			InsecureSkipVerify: true},
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+from+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", from, err)
	}
	defer resp.Body.Close()
	want, err := peerProof(app, secret, resp.TLS)
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", from, err)
	}
	if !hmac.Equal([]byte(resp.Header.Get(peerProofHeader)), []byte(want)) {
		return nil, fmt.Errorf("peer %s: the peer does not hold the app's peer secret", from)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("peer %s: %w", from, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("peer %s: %s: %s", from, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

func certPath(name string) string { return "/v1/certificates/" + url.PathEscape(name) }
func challengePath(name, token string) string {
	return "/v1/challenges/" + url.PathEscape(name) + "/" + url.PathEscape(token)
}
