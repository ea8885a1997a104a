// Command dovecotd runs the test suite's private Dovecot outside tests, for
// the bench tool and for manual trials. It prints the addresses, optionally
// seeds the first user's mailbox with a generated corpus, and runs until
// SIGINT or SIGTERM.
//
// Usage:
//
//	dovecotd [-dir DIR] [-user NAME:PASS]... [-seed N] [-real] [-files] [-tls MODE] [-json]
//
// Without -dir it uses a fresh temporary directory and removes it on exit;
// with -dir the mail stays there for the next run.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/corpus"
	"github.com/postfach/postfach/internal/testenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dovecotd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		cfg        testenv.Config
		dir        = flag.String("dir", "", "`directory` for config, logs and mail (default: a temporary one, removed on exit)")
		seedN      = flag.Int("seed", 0, "seed `N` generated messages into the first user's mailbox")
		corpusSeed = flag.Int64("corpus-seed", 1, "random `seed` of the generated corpus")
		files      = flag.Bool("files", false, "seed by writing Maildir files instead of IMAP APPEND (faster)")
		bigEvery   = flag.Int("big-every", 0, "add a big attachment to every `K`-th message")
		bigSize    = flag.Int("big-size", corpus.DefaultBigAttachmentSize, "size of the big attachment in `bytes`")
		realSizes  = flag.Bool("real", false, "give the corpus the size mix of real mail, as go run ./internal/bench has by default")
		tlsMode    = flag.String("tls", "off", "TLS `mode`: off, on, wrong-host, expired")
		asJSON     = flag.Bool("json", false, "print the instance as one JSON object instead of text")
	)
	flag.Func("user", "add a user `NAME:PASS` (repeatable; default test:test-pass)", func(s string) error {
		name, pass, ok := strings.Cut(s, ":")
		if !ok || name == "" {
			return errors.New("want NAME:PASS")
		}
		cfg.Users = append(cfg.Users, testenv.User{Name: name, Password: pass})
		return nil
	})
	flag.BoolVar(&cfg.Debug, "debug", false, "enable Dovecot's auth and mail debug logging")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}

	switch *tlsMode {
	case "off":
		cfg.TLS = testenv.TLSOff
	case "on":
		cfg.TLS = testenv.TLSOn
	case "wrong-host":
		cfg.TLS = testenv.TLSWrongHost
	case "expired":
		cfg.TLS = testenv.TLSExpired
	default:
		return fmt.Errorf("-tls %q: want off, on, wrong-host or expired", *tlsMode)
	}
	if len(cfg.Users) == 0 {
		cfg.Users = []testenv.User{testenv.DefaultUser}
	}
	cfg.Dir = *dir
	if cfg.Dir == "" {
		tmp, err := os.MkdirTemp("", "dovecotd-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		cfg.Dir = tmp
	}

	d, err := testenv.NewDovecot(cfg)
	if err != nil {
		return err
	}
	defer d.Stop()

	// Stop Dovecot on a signal even while seeding.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	var seedTime time.Duration
	if *seedN > 0 {
		start := time.Now()
		opts := corpus.Options{BigAttachmentEvery: *bigEvery, BigAttachmentSize: *bigSize, RealSizes: *realSizes}
		done := make(chan error, 1)
		go func() { done <- seed(d, cfg.Users[0].Name, *corpusSeed, *seedN, opts, *files) }()
		select {
		case err := <-done:
			if err != nil {
				return err
			}
		case s := <-sig:
			return fmt.Errorf("%v while seeding", s)
		}
		seedTime = time.Since(start)
	}

	if *asJSON {
		out := map[string]any{
			"version": d.Version, "dir": d.Dir, "log": d.LogFile,
			"imap": d.IMAPAddr(), "pop3": d.POP3Addr(),
			"users": cfg.Users, "seeded": *seedN, "seed_seconds": seedTime.Seconds(),
		}
		if d.IMAPSPort != 0 {
			out["imaps"], out["pop3s"], out["ca_file"], out["tls"] = d.IMAPSAddr(), d.POP3SAddr(), d.CertFile, d.TLS.String()
		}
		if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
			return err
		}
	} else {
		fmt.Printf("dovecot %s in %s (log %s)\n", d.Version, d.Dir, d.LogFile)
		fmt.Printf("imap   %s\npop3   %s\n", d.IMAPAddr(), d.POP3Addr())
		if d.IMAPSPort != 0 {
			fmt.Printf("imaps  %s\npop3s  %s\nca     %s (tls %s)\n", d.IMAPSAddr(), d.POP3SAddr(), d.CertFile, d.TLS)
		}
		for _, u := range cfg.Users {
			fmt.Printf("user   %s %s  maildir %s\n", u.Name, u.Password, d.MailDir(u.Name))
		}
		if *seedN > 0 {
			how := "IMAP APPEND"
			if *files {
				how = "Maildir files"
			}
			fmt.Printf("seeded %d messages into %s by %s in %.2fs\n", *seedN, cfg.Users[0].Name, how, seedTime.Seconds())
		}
		fmt.Println("running; Ctrl-C stops")
	}
	<-sig
	return d.Stop()
}

// seed streams n generated messages into user's mailbox.
func seed(d *testenv.Dovecot, user string, seed int64, n int, opts corpus.Options, files bool) error {
	if files {
		w := d.MaildirWriter(user)
		return corpus.Each(seed, n, opts, w.Write)
	}
	a, err := d.Appender(user)
	if err != nil {
		return err
	}
	if err := corpus.Each(seed, n, opts, a.Append); err != nil {
		a.Close()
		return err
	}
	return a.Close()
}
