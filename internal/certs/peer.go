package certs

import (
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
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
)

// The peer channel joins the proxies of an app's hosts, so that one of
// them (the issuer) obtains each certificate and the others copy it. It
// is HTTPS on its own port (DefaultPeerPort) where both ends present a
// certificate made from the app's peer secret, which hoist setup gives
// every host of the app over SSH: a TLS 1.3 handshake that succeeds
// proves both hold it, and nothing secret crosses the wire. The issuer
// answers
//
//	GET /v1/certificates/{name}        the certificate and key (JSON)
//	GET /v1/challenges/{name}/{token}  an HTTP-01 key authorization, so
//	                                   that a copier reached by the CA
//	                                   can answer the challenge
//
// for the names its plan says it obtains for that app, and nothing else.

// DefaultPeerPort is where the proxies of an app's hosts reach each other.
const DefaultPeerPort = 9443

// peerSNI is the server name a copier sends: it picks the app.
func peerSNI(app string) string { return app + ".peer.hoist.invalid" }

// peerIdentity is the certificate both ends of app's channel present,
// and its public key: an Ed25519 key derived from the secret. It is
// made once per app and secret, so that a stranger's handshakes cost
// the issuer no more than a lookup.
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
	raw, err := base64.StdEncoding.DecodeString(secret)
	if err != nil || len(raw) < 16 {
		return tls.Certificate{}, nil, fmt.Errorf("peer secret of %s: not base64 of at least 16 bytes", app)
	}
	seed, err := hkdf.Key(sha256.New, raw, []byte("hoist peer channel v1"), app, ed25519.SeedSize)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hoist peer " + app},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, pub, nil
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
		p := m.issuerPlan(strings.TrimSuffix(hello.ServerName, ".peer.hoist.invalid"))
		if p == nil {
			return nil, fmt.Errorf("no app %q shares certificates here", hello.ServerName)
		}
		cert, pub, err := peerIdentity(p.App, p.PeerSecret)
		if err != nil {
			return nil, err
		}
		return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
			ClientAuth: tls.RequireAnyClientCert, VerifyPeerCertificate: pinned(pub)}, nil
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
	srv := &http.Server{Handler: mux, TLSConfig: conf, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
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
	return name, slices.ContainsFunc(p.Names, func(n PlanName) bool { return n.Name == name && n.From == "" })
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
	cert, pub, err := peerIdentity(app, secret)
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, ServerName: peerSNI(app), Certificates: []tls.Certificate{cert},
			// The peer is checked against the pinned key, not a CA.
			InsecureSkipVerify: true, VerifyPeerCertificate: pinned(pub)},
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
