package mqtt

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/floorhub/floorhub/uplink/backoff"
)

type pki struct {
	dir                                string
	ca, serverCert, serverKey, cliCert string
	cliKey, otherCA                    string
	caTmpl                             *x509.Certificate
	caKey                              *ecdsa.PrivateKey
}

func writePEM(t *testing.T, path, typ string, der []byte) string {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// newPKI makes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all signed by the CA, and an unrelated CA.
func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	mkCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, k, writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der)
	}
	p.caTmpl, p.caKey, p.ca = mkCA("ca")
	_, _, p.otherCA = mkCA("other-ca")
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, ip net.IP) (string, string) {
		k := key()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caTmpl, &k.PublicKey, p.caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return writePEM(t, filepath.Join(p.dir, name+".pem"), "CERTIFICATE", der),
			writePEM(t, filepath.Join(p.dir, name+".key"), "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth, net.ParseIP("127.0.0.1"))
	p.cliCert, p.cliKey = leaf("gw1", 3, x509.ExtKeyUsageClientAuth, nil)
	return p
}

func TestTLSWithClientCertificate(t *testing.T) {
	p := newPKI(t)
	b := startBroker(t, fmt.Sprintf("listener %s 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true",
		extraPortMark, p.ca, p.serverCert, p.serverKey))
	tlsPort := b.ExtraPort
	col := newCollector(t, b, "central", "floorhub/gw1/#")
	st := openStore(t, filepath.Join(t.TempDir(), "fh.db"))
	last := appendN(t, st, 0, 500)
	tlsURL := "ssl://127.0.0.1:" + strconv.Itoa(tlsPort)

	// A gateway that trusts another CA, or has no client certificate,
	// does not get in (and keeps trying: the backoff is asked again).
	for _, c := range []struct{ name, ca, cert, key string }{
		{"wrong CA", p.otherCA, p.cliCert, p.cliKey},
		{"no client certificate", p.ca, "", ""},
	} {
		failed := make(chan time.Duration, 1)
		o := testOptions(t, b)
		o.URL, o.CAFile, o.CertFile, o.KeyFile = tlsURL, c.ca, c.cert, c.key
		o.Backoff = backoff.Options{After: func(d time.Duration) <-chan time.Time {
			select {
			case failed <- d:
			default:
			}
			return make(chan time.Time) // wait until cancelled
		}}
		u, err := New(st, nil, o)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- u.Run(ctx) }()
		select {
		case <-failed:
		case <-time.After(20 * time.Second):
			t.Errorf("%s: no failed attempt within 20 s", c.name)
		}
		if u.Connected() {
			t.Errorf("%s: connected", c.name)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", c.name, err)
		}
	}

	o := testOptions(t, b)
	o.URL, o.CAFile, o.CertFile, o.KeyFile = tlsURL, p.ca, p.cliCert, p.cliKey
	u, err := New(st, nil, o)
	if err != nil {
		t.Fatal(err)
	}
	runUplink(t, u)
	col.waitUntil("every record over TLS", 30*time.Second, func() bool { return col.haveAll(last, nil) })
}
