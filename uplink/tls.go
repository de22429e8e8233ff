package uplink

import (
	"crypto/tls"
	"crypto/x509"
	"os"
)

// TLSConfig loads a CA file (PEM; empty: the system's roots) and a client
// certificate and key (PEM; both or neither) into a TLS 1.2+ client
// config. Both transports load them at start-up, so a bad path fails then
// instead of at every reconnect.
// Its errors are *TLSError.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, &TLSError{Field: "CAFile", Reason: err.Error()}
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &TLSError{Field: "CAFile", Reason: caFile + ": no PEM certificate in it"}
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, &TLSError{Field: "CertFile", Reason: "and KeyFile go together"}
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, &TLSError{Field: "CertFile", Reason: "(or KeyFile): " + err.Error()}
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// TLSError is an error of TLSConfig: the option at fault (CAFile, CertFile)
// and why, so that each transport names its own config key.
type TLSError struct {
	Field, Reason string
}

func (e *TLSError) Error() string { return e.Field + ": " + e.Reason }
