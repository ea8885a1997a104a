package localauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The generated login is made once, in a 0600 file in a 0700 directory,
// and is the same for every caller, also for two at once; configured
// values win.
func TestCredentials(t *testing.T) {
	root := t.TempDir()
	var wg sync.WaitGroup
	got := make([]*Credentials, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := LoadCredentials(root, "", "")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = c
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	c := got[0]
	path := filepath.Join(root, ".postfach", CredentialsFile)
	if c.Username != DefaultUsername || len(c.Password) != 32 || c.File != path {
		t.Fatalf("generated %+v", c)
	}
	for _, o := range got[1:] {
		if *o != *c {
			t.Errorf("two logins made: %+v and %+v", c, o)
		}
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, m)
	}
	if m := mode(t, filepath.Dir(path)); m != 0o700 {
		t.Errorf("state directory has mode %04o, want 0700", m)
	}
	var stored Credentials
	if data, err := os.ReadFile(path); err != nil || json.Unmarshal(data, &stored) != nil || stored.Password != c.Password {
		t.Errorf("stored %q (%v)", data, err)
	}

	// A file others can read is made private; configured values win.
	os.Chmod(path, 0o644)
	c2, err := LoadCredentials(root, "me", "")
	if err != nil || c2.Username != "me" || c2.Password != c.Password {
		t.Errorf("configured user: %+v, %v", c2, err)
	}
	if m := mode(t, path); m != 0o600 {
		t.Errorf("after load the file has mode %04o, want 0600", m)
	}
	c3, err := LoadCredentials(t.TempDir(), "me", "pw")
	if err != nil || c3.Username != "me" || c3.Password != "pw" || c3.File != "" {
		t.Errorf("both configured: %+v, %v", c3, err)
	}

	os.WriteFile(path, []byte("{"), 0o600)
	_, err = LoadCredentials(root, "", "")
	if want := "local credentials: " + path + " is damaged (remove it: postfach makes a new login, which your clients must then be given)"; err == nil || err.Error() != want {
		t.Errorf("damaged file: %v", err)
	}
}

// The generated certificate is ECDSA P-256 for 127.0.0.1, ::1 and
// localhost, stored 0600, kept across loads; a client that pins it
// connects; its fingerprint is the SHA-256 of the file's certificate.
func TestGeneratedCertificate(t *testing.T) {
	root := t.TempDir()
	c, err := LoadCertificate(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if !c.Generated || c.CertFile != filepath.Join(root, ".postfach", CertFile) || c.KeyFile != filepath.Join(root, ".postfach", KeyFile) {
		t.Errorf("certificate %+v", c)
	}
	for _, f := range []string{c.CertFile, c.KeyFile} {
		if m := mode(t, f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, m)
		}
	}
	pemData, _ := os.ReadFile(c.CertFile)
	block, _ := pem.Decode(pemData)
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(block.Bytes)
	if want := strings.ToUpper(fmt.Sprintf("%x", sum)); strings.ReplaceAll(c.Fingerprint, ":", "") != want || len(c.Fingerprint) != 95 {
		t.Errorf("fingerprint %s, want %s", c.Fingerprint, want)
	}
	pub, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 800*24*time.Hour || d > 826*24*time.Hour {
		t.Errorf("valid for %v", d)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := leaf.VerifyHostname(name); err != nil {
			t.Errorf("not valid for %s: %v", name, err)
		}
	}
	again, err := LoadCertificate(root, "", "")
	if err != nil || again.Fingerprint != c.Fingerprint {
		t.Errorf("second load: %v, fingerprint %s, want %s", err, again.Fingerprint, c.Fingerprint)
	}

	// A client that trusts exactly this certificate connects over TLS.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.Write([]byte("hi"))
			conn.Close()
		}
	}()
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("pinned client: %v", err)
	}
	buf := make([]byte, 2)
	if _, err := conn.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v", buf, err)
	}
	conn.Close()
}

// A generated certificate near its end, or one that does not match its
// key, is replaced.
func TestCertificateRenewed(t *testing.T) {
	root := t.TempDir()
	dir := StateDir(root)
	os.MkdirAll(dir, 0o700)
	old, key, err := generate(time.Now().Add(-certValidity + 10*24*time.Hour)) // 10 days left
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, CertFile), old, 0o600)
	os.WriteFile(filepath.Join(dir, KeyFile), key, 0o600)
	block, _ := pem.Decode(old)
	c, err := LoadCertificate(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Fingerprint == Fingerprint(block.Bytes) || time.Until(c.NotAfter) < certValidity-24*time.Hour {
		t.Errorf("old certificate kept (ends %v)", c.NotAfter)
	}

	_, otherKey, _ := generate(time.Now())
	os.WriteFile(filepath.Join(dir, KeyFile), otherKey, 0o600)
	c2, err := LoadCertificate(root, "", "")
	if err != nil || c2.Fingerprint == c.Fingerprint {
		t.Errorf("mismatched key: %v, fingerprint unchanged", err)
	}
}

// A configured certificate is used as it is; a bad one is a one-line
// error naming the files.
func TestConfiguredCertificate(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, _ := generate(time.Now())
	cf, kf := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	os.WriteFile(cf, certPEM, 0o644)
	os.WriteFile(kf, keyPEM, 0o600)
	root := t.TempDir()
	c, err := LoadCertificate(root, cf, kf)
	if err != nil || c.Generated || c.CertFile != cf {
		t.Fatalf("%+v, %v", c, err)
	}
	if _, err := os.Stat(StateDir(root)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a configured certificate made the state directory (%v)", err)
	}
	os.WriteFile(kf, []byte("junk"), 0o600)
	_, err = LoadCertificate(root, cf, kf)
	if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), kf) {
		t.Errorf("bad key: %v", err)
	}
}

func TestAddrKey(t *testing.T) {
	for addr, want := range map[net.Addr]string{
		&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}:           "127.0.0.1",
		&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 1}:        "10.0.0.1",
		&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:3:4:5:6"), Port: 1}:   "2001:db8:1:2::/64",
		&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ff:4:5:6"), Port: 99}: "2001:db8:1:2::/64",
		&net.UnixAddr{Name: "/x", Net: "unix"}:                           "/x",
	} {
		if got := addrKey(addr); got != want {
			t.Errorf("addrKey(%v) = %q, want %q", addr, got, want)
		}
	}
}
