package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/agent/demo"
	"github.com/postfach/postfach/configs"
)

func newDemoCmd(g *globals) *cobra.Command {
	var dir string
	var n int
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Mirror a sample mailbox from a built-in local IMAP server, then show status",
		Long: `Start an IMAP server inside this process on 127.0.0.1, seeded with sample
mail in several folders (one nested, one with a non-ASCII name), write a
config for it into DIR, mirror it into DIR/Mail and print the status. Run it
twice to see an incremental sync that downloads nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			srv, err := demo.Start(n)
			if err != nil {
				return err
			}
			defer srv.Close()
			abs, err := filepath.Abs(dir)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(abs, 0o700); err != nil {
				return err
			}
			host, port := splitAddr(srv.Addr)
			conf := fmt.Sprintf(`# Written by "postfach demo"; the demo server lived only while the demo ran.
[store]
path = %q

[[accounts]]
name = "demo"
kind = "imap"
host = %q
port = %s
tls = "none"        # loopback only
username = %q
password = %q
`, filepath.Join(abs, "Mail"), host, port, srv.User, srv.Password)
			cfgPath := filepath.Join(abs, "config.toml")
			if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
				return err
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return err
			}
			a, err := agent.Open(cfg, g.logger())
			if err != nil {
				return err
			}
			defer a.Close()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "demo IMAP server on %s with %d messages; mirroring into %s\n", srv.Addr, srv.Messages, cfg.Store.Path)
			start := time.Now()
			var prog progressReporter = nopProgress{}
			if isatty.IsTerminal(os.Stderr.Fd()) {
				prog = newBarProgress(os.Stderr)
			}
			reports, err := a.Sync(cmd.Context(), nil, prog)
			prog.Finish()
			printReports(out, reports, time.Since(start), false)
			if err != nil {
				return err
			}
			st, err := a.Status(cmd.Context())
			if err != nil {
				return err
			}
			for _, acct := range st.Accounts {
				for _, f := range acct.Folders {
					fmt.Fprintf(out, "  %-10s %4d messages\n", safe(f.Name), f.Messages)
				}
			}
			fmt.Fprintf(out, "\nTry:  postfach --config %s search archive\n      ls %s\n", cfgPath, filepath.Join(cfg.Store.Path, "demo"))
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "postfach-demo", "where to put the demo config and Maildir")
	cmd.Flags().IntVar(&n, "messages", 300, "number of sample messages")
	return cmd
}

func splitAddr(addr string) (string, string) {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[:i], addr[i+1:]
		}
	}
	return addr, ""
}
