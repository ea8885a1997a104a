package localauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"strings"
	"time"
)

// Validity of a generated certificate, and how long before its end a new
// one is made.
const (
	certValidity = 825 * 24 * time.Hour
	certRenew    = 30 * 24 * time.Hour
)

// Certificate is the endpoints' TLS certificate.
type Certificate struct {
	TLS               tls.Certificate
	CertFile, KeyFile string // where it was read from
	Generated         bool   // made by postfach (self-signed), not configured
	// Fingerprint is the SHA-256 of the certificate (DER), as hex pairs
	// joined by ":" (as `openssl x509 -fingerprint -sha256` prints it).
	Fingerprint string
	NotAfter    time.Time
}

// TLSConfig returns a server configuration serving the certificate, TLS
// 1.2 and up.
func (c *Certificate) TLSConfig() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}, MinVersion: tls.VersionTLS12}
}

// LoadCertificate returns the configured certificate (certFile and
// keyFile, PEM) or, when certFile is "", the one generated for the store
// rooted at root: <root>/.postfach/local-cert.pem and local-key.pem, made
// on first use and again when less than 30 days of it are left.
func LoadCertificate(root, certFile, keyFile string) (*Certificate, error) {
	if certFile != "" {
		kp, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("[serve] cert_file %s, key_file %s: %s", certFile, keyFile, strings.TrimPrefix(err.Error(), "tls: "))
		}
		return newCertificate(kp, certFile, keyFile, false)
	}
	dir := StateDir(root)
	certFile, keyFile = filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	var c *Certificate
	err := withLock(dir, func() error {
		certPEM, err := readPrivate(certFile)
		if err != nil {
			return err
		}
		keyPEM, err := readPrivate(keyFile)
		if err != nil {
			return err
		}
		if certPEM != nil && keyPEM != nil {
			kp, err := tls.X509KeyPair(certPEM, keyPEM)
			if err == nil {
				c, err = newCertificate(kp, certFile, keyFile, true)
			}
			if err == nil && time.Until(c.NotAfter) > certRenew {
				return nil
			}
			// Damaged, or ending soon: a new one (clients that pinned the
			// old one must be told the new fingerprint).
		}
		certPEM, keyPEM, err = generate(time.Now())
		if err != nil {
			return err
		}
		// The key first: a crash between the two leaves a certificate
		// that does not match its key, which the next start replaces.
		if err := writePrivate(keyFile, keyPEM); err != nil {
			return err
		}
		if err := writePrivate(certFile, certPEM); err != nil {
			return err
		}
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return err
		}
		c, err = newCertificate(kp, certFile, keyFile, true)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("local TLS certificate: %w", err)
	}
	return c, nil
}

func newCertificate(kp tls.Certificate, certFile, keyFile string, generated bool) (*Certificate, error) {
	leaf, err := x509.ParseCertificate(kp.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certFile, err)
	}
	kp.Leaf = leaf
	return &Certificate{TLS: kp, CertFile: certFile, KeyFile: keyFile, Generated: generated,
		Fingerprint: Fingerprint(leaf.Raw), NotAfter: leaf.NotAfter}, nil
}

// Fingerprint returns the SHA-256 of a DER certificate as upper-case hex
// pairs joined by ":".
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	pairs := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		pairs = append(pairs, h[i:i+2])
	}
	return strings.Join(pairs, ":")
}

// generate makes a self-signed ECDSA P-256 certificate for 127.0.0.1, ::1
// and localhost, valid from an hour before now for certValidity.
func generate(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"postfach local endpoints"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), nil
}
