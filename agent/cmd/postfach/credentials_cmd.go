package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent/localauth"
	"github.com/postfach/postfach/configs"
)

// credentialsOut is what `postfach credentials --json` prints.
type credentialsOut struct {
	Username string `json:"username"`
	Password string `json:"password"`
	IMAP     string `json:"imap"` // listen address; "" = off
	POP3     string `json:"pop3"` // listen address; "" = off
	// Submission is the SMTP submission endpoint's listen address; "" = off.
	Submission string `json:"submission"`
	TLS        string `json:"tls"` // none, starttls or implicit
	// CertFile is the endpoints' certificate (PEM); "" with tls = "none".
	CertFile string `json:"cert_file"`
	// Fingerprint is the certificate's SHA-256, hex pairs joined by ":".
	Fingerprint string `json:"fingerprint_sha256"`
	CertExpires string `json:"cert_expires"` // RFC 3339
	SelfSigned  bool   `json:"self_signed"`
}

func newCredentialsCmd(g *globals) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "credentials",
		Short: "Show the login and certificate mail clients use for the local endpoints",
		Long: `Show what a mail client needs to use postfach's local IMAP, POP3 and
SMTP submission endpoints ([serve] in the config): the user name and password, the
addresses, the TLS mode, and the certificate's file and SHA-256
fingerprint (for clients that pin it).

The login is the one [serve] sets (username, password or password_cmd),
else one generated on first use and kept in the store's .postfach
directory; the certificate is [serve] cert_file, else a self-signed one
for 127.0.0.1, ::1 and localhost generated on first use. This command
makes them if they do not exist yet. Clients never use an upstream
account's password here.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := g.load()
			if err != nil {
				return err
			}
			out, err := localCredentials(cmd, cfg)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printCredentials(cmd, cfg, out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// localCredentials gathers the login and the certificate, making them
// when missing.
func localCredentials(cmd *cobra.Command, cfg *configs.Config) (*credentialsOut, error) {
	s := cfg.Serve
	pw, err := s.Secret(cmd.Context())
	if err != nil {
		return nil, err
	}
	creds, err := localauth.LoadCredentials(cfg.Store.Path, s.Username, pw)
	if err != nil {
		return nil, err
	}
	out := &credentialsOut{Username: creds.Username, Password: creds.Password, IMAP: s.IMAP, POP3: s.POP3, Submission: s.Submission, TLS: s.TLS}
	if s.TLS == "none" {
		return out, nil
	}
	cert, err := localauth.LoadCertificate(cfg.Store.Path, s.CertFile, s.KeyFile)
	if err != nil {
		return nil, err
	}
	out.CertFile, out.Fingerprint, out.SelfSigned = cert.CertFile, cert.Fingerprint, cert.Generated
	out.CertExpires = cert.NotAfter.UTC().Format(time.RFC3339)
	return out, nil
}

func printCredentials(cmd *cobra.Command, cfg *configs.Config, c *credentialsOut) {
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	endpoint := func(addr string) string {
		switch {
		case addr == "":
			return "off"
		case c.TLS == "starttls":
			return addr + " (STARTTLS)"
		case c.TLS == "implicit":
			return addr + " (TLS)"
		}
		return addr + " (no TLS)"
	}
	fmt.Fprintf(w, "username\t%s\n", c.Username)
	fmt.Fprintf(w, "password\t%s\n", c.Password)
	fmt.Fprintf(w, "imap\t%s\n", endpoint(c.IMAP))
	fmt.Fprintf(w, "pop3\t%s\n", endpoint(c.POP3))
	if c.Submission != "" {
		fmt.Fprintf(w, "submission\t%s\n", endpoint(c.Submission))
	}
	if c.CertFile != "" {
		kind := "configured"
		if c.SelfSigned {
			kind = "self-signed"
		}
		fmt.Fprintf(w, "certificate\t%s (%s, valid until %s)\n", c.CertFile, kind, c.CertExpires[:10])
		fmt.Fprintf(w, "sha256\t%s\n", c.Fingerprint)
	}
	w.Flush()
	if c.IMAP == "" && c.POP3 == "" && c.Submission == "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "postfach: no local endpoint is on: set [serve] imap, pop3 or submission in %s (postfach run serves them)\n", cfg.File)
	}
}
