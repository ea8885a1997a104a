package main

import (
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `postfach credentials` makes the local login and certificate on first
// use (files 0600), shows the same ones every time, as text and as JSON;
// the fingerprint is the SHA-256 of the certificate in the file.
func TestCredentialsGenerated(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[store]\npath = %q\n[serve]\nimap = \"127.0.0.1:1143\"\npop3 = \"[::1]:1110\"\n", store)), 0o600)

	r := mustRun(t, nil, "--config", cfg, "credentials", "--json")
	var got credentialsOut
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, r)
	}
	state := filepath.Join(store, ".postfach")
	certFile := filepath.Join(state, "local-cert.pem")
	if got.Username != "postfach" || len(got.Password) != 32 || got.IMAP != "127.0.0.1:1143" || got.POP3 != "[::1]:1110" ||
		got.TLS != "starttls" || got.CertFile != certFile || !got.SelfSigned {
		t.Errorf("credentials %+v", got)
	}
	for _, f := range []string{"local-credentials", "local-cert.pem", "local-key.pem"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: %v, mode %v; want 0700", state, err, fi.Mode())
	}
	data, _ := os.ReadFile(certFile)
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", certFile)
	}
	sum := sha256.Sum256(block.Bytes)
	if hex := strings.ReplaceAll(got.Fingerprint, ":", ""); hex != strings.ToUpper(fmt.Sprintf("%x", sum)) {
		t.Errorf("fingerprint %s is not the certificate's SHA-256 %x", got.Fingerprint, sum)
	}
	expires, err := time.Parse(time.RFC3339, got.CertExpires)
	if err != nil || time.Until(expires) < 800*24*time.Hour {
		t.Errorf("cert_expires %q (%v)", got.CertExpires, err)
	}

	// The text form, with the same login and certificate.
	r = mustRun(t, nil, "--config", cfg, "credentials")
	want := "username     postfach\n" +
		"password     " + got.Password + "\n" +
		"imap         127.0.0.1:1143 (STARTTLS)\n" +
		"pop3         [::1]:1110 (STARTTLS)\n" +
		"certificate  " + certFile + " (self-signed, valid until " + got.CertExpires[:10] + ")\n" +
		"sha256       " + got.Fingerprint + "\n"
	if r.stdout != want {
		t.Errorf("text:\n%s\nwant:\n%s", r.stdout, want)
	}
}

// Configured credentials are shown as configured (password_cmd run);
// without TLS there is no certificate; with no endpoint on, a note says
// how to turn one on.
func TestCredentialsConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[store]\npath = %q\n[serve]\nusername = \"me\"\npassword_cmd = \"echo local-pw\"\ntls = \"none\"\n", store)), 0o600)
	r := run(t, nil, "--config", cfg, "credentials")
	want := "username  me\npassword  local-pw\nimap      off\npop3      off\n"
	wantErr := "postfach: no local endpoint is on: set [serve] imap, pop3 or submission in " + cfg + " (postfach run serves them)\n"
	if r.code != 0 || r.stdout != want || r.stderr != wantErr {
		t.Errorf("%s\nwant stdout\n%s\nstderr\n%s", r, want, wantErr)
	}
	if _, err := os.Stat(filepath.Join(store, ".postfach")); !os.IsNotExist(err) {
		t.Errorf("configured credentials without TLS made the state directory (%v)", err)
	}
}

// A bad [serve] is refused with one line naming the file, line and key.
func TestCredentialsBadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.toml")
	os.WriteFile(cfg, []byte("[serve]\nimap = \"0.0.0.0:1143\"\ntls = \"none\"\n"), 0o600)
	r := run(t, nil, "--config", cfg, "credentials")
	want := cfg + `:2: serve.imap: "0.0.0.0:1143" is not a loopback address: the endpoints serve the whole store to whoever logs in, so listening beyond this machine needs allow_remote = true and tls = "starttls" or "implicit" (or listen on "127.0.0.1:1143")` + "\n"
	if r.code != 2 || r.stderr != want || r.stdout != "" {
		t.Errorf("%s\nwant exit 2 and stderr\n%s", r, want)
	}
}
