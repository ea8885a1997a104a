package configs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a self-signed CA certificate for host, parsed and as PEM.
func selfSigned(t *testing.T, host string) (*x509.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: host},
		DNSNames:              []string{host},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	cert, pemBytes := selfSigned(t, "imap.test")
	caFile := filepath.Join(dir, "ca.pem")
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	a := Account{Name: "a", Host: "imap.test", CAFile: caFile}
	cfg, err := a.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "imap.test" || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("ServerName %q, MinVersion %x", cfg.ServerName, cfg.MinVersion)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: "imap.test"}); err != nil {
		t.Errorf("ca_file certificate not trusted: %v", err)
	}
	a.CAFile = ""
	if cfg, err = a.TLSConfig(); err != nil {
		t.Fatal(err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: cfg.RootCAs, DNSName: "imap.test"}); err == nil {
		t.Error("self-signed certificate trusted without ca_file")
	}

	a.CAFile = filepath.Join(dir, "missing.pem")
	if _, err := a.TLSConfig(); err == nil || !strings.HasPrefix(err.Error(), `account "a": ca_file: open `) {
		t.Errorf("missing ca_file: err = %v", err)
	}
	a.CAFile = junk
	if _, err := a.TLSConfig(); err == nil || err.Error() != `account "a": ca_file `+junk+`: no PEM certificate in it` {
		t.Errorf("junk ca_file: err = %v", err)
	}
	s := SMTP{Host: "smtp.test", CAFile: junk, account: "a"}
	if _, err := s.TLSConfig(); err == nil || !strings.HasPrefix(err.Error(), `account "a" smtp: ca_file`) {
		t.Errorf("smtp junk ca_file: err = %v", err)
	}
}
