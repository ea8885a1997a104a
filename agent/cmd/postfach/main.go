// Command postfach is the command-line interface of postfach, a personal
// mail sync and archiving agent. It is thin: it parses flags, loads the
// config and calls into package agent. Everything it prints for a human
// goes through safe and safeWriter (safe.go): text from servers and
// messages never reaches the terminal with its control characters.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/configs"
)

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type globals struct {
	configPath  string
	verbose     bool
	cpuProfile  string
	memProfile  string
	traceFile   string
	allWarnings bool // the command prints every warning itself (config check)
}

func main() {
	var root *cobra.Command
	ctx, sig, stop := context.Background(), func() syscall.Signal { return 0 }, func() {}
	if cmd := alone[commandName(os.Args[1:])]; cmd != nil {
		// postfach send runs once per message (a mail client's
		// sendmail), search and show once per question: each builds its
		// command alone, and a signal ends it as it would end sendmail or
		// grep (send's message is then queued or not, as after a kill:
		// see send's exit statuses; search's indexing, if it was
		// indexing, resumes next time, as after a kill).
		root = newRootCommand(&globals{}, cmd)
	} else {
		ctx, sig, stop = signalContext()
		root = newRoot()
	}
	// Everything printed goes through safeWriter: see safe.go.
	root.SetOut(safeWriter{os.Stdout})
	root.SetErr(safeWriter{os.Stderr})
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		if s := sig(); s != 0 {
			// Also with --json: the exit status tells a stop from a failure.
			fmt.Fprintln(os.Stderr, "postfach: interrupted; the next run resumes where this one stopped")
			os.Exit(128 + int(s)) // as a shell reports a death by the signal: 130 for SIGINT, 143 for SIGTERM
		}
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		printError(os.Stderr, err)
		os.Exit(1)
	}
}

// signalContext returns a context cancelled by the first SIGINT or
// SIGTERM, a function telling which one came (0 if none), and the
// function that stops listening.
func signalContext() (context.Context, func() syscall.Signal, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	var got atomic.Int32
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			got.Store(int32(s.(syscall.Signal)))
			cancel()
		case <-done:
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() { close(done) })
		// Later signals are still caught (not the default death) until
		// the process exits: the run is winding down already.
	}
	return ctx, func() syscall.Signal { return syscall.Signal(got.Load()) }, stop
}

// printError prints a failed command's error, one "postfach: " line per
// line of it, control characters escaped. A password_cmd or token_cmd that failed gets
// one more line with the first line it printed on stderr (kept out of the
// error itself, which is stored in the index).
func printError(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, "postfach:", safe(line))
	}
	for _, ce := range cmdErrors(err) {
		if ce.Stderr != "" {
			fmt.Fprintf(w, "postfach: %s: %s printed: %s\n", safe(ce.Who), ce.Setting(), safe(ce.Stderr))
		}
	}
}

// cmdErrors finds the *configs.CmdError in err's tree (errors.Join'ed
// accounts each may have one).
func cmdErrors(err error) []*configs.CmdError {
	var out []*configs.CmdError
	var walk func(error)
	walk = func(err error) {
		if ce, ok := err.(*configs.CmdError); ok {
			out = append(out, ce)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// alone are the commands that run many times a minute, one process each
// (a mail client's sendmail, a search from a script or an editor): they
// build their command alone, without the others nor a signal watcher
// (about half a millisecond of a search's ten).
var alone = map[string]func(*globals) *cobra.Command{
	"send":   newSendCmd,
	"search": newSearchCmd,
	"show":   newShowCmd,
}

// commandName returns the command args (without the program's name) run:
// the first argument that is not a global flag or its value ("" when
// there is none).
func commandName(args []string) string {
	for i := 0; i < len(args); i++ {
		switch a := args[i]; a {
		case "--config", "-c", "--cpuprofile", "--memprofile", "--trace":
			i++ // the flag's value
		case "--verbose", "-v":
		default:
			if strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "--cpuprofile=") || strings.HasPrefix(a, "--memprofile=") || strings.HasPrefix(a, "--trace=") {
				continue
			}
			return a
		}
	}
	return ""
}

func newRoot() *cobra.Command {
	return newRootCommand(&globals{},
		newInitCmd,
		newConfigCmd,
		newSyncCmd,
		newRunCmd,
		newMigrateCmd,
		newStatusCmd,
		newSearchCmd,
		newShowCmd,
		newDemoCmd,
		newCredentialsCmd,
		newSendCmd,
		newQueueCmd,
		newBackupCmd,
		newVerifyCmd,
		newRestoreCmd,
		newPurgeCmd,
	)
}

// newRootCommand returns the root command with the global flags and the
// commands cmds make.
func newRootCommand(g *globals, cmds ...func(*globals) *cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "postfach",
		Short: "Personal mail sync and archiving agent",
		Long: `postfach keeps your IMAP accounts and a local Maildir in step, both ways,
pulls POP3 inboxes, and migrates mailboxes to IMAP; a SQLite index makes
the store searchable. Your mail is on your own disk, searchable and safe.

Configuration lives in one TOML file (see "postfach init").`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVarP(&g.configPath, "config", "c", configs.DefaultPath(), "config file")
	root.PersistentFlags().BoolVarP(&g.verbose, "verbose", "v", false, "log what happens (to stderr)")
	addProfileFlags(root, g)
	root.Version = version()
	root.SetVersionTemplate("postfach {{.Version}}\n")
	for _, c := range cmds {
		sub := c(g)
		namedArgs(sub)
		root.AddCommand(sub)
	}
	return root
}

// namedArgs makes the argument errors of cmd and its subcommands name
// the command and show its usage: cobra's own say only "requires at
// least 1 arg(s), only received 0".
func namedArgs(cmd *cobra.Command) {
	if check := cmd.Args; check != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := check(c, args); err != nil {
				return fmt.Errorf("%s: %v (usage: %s)", strings.TrimPrefix(c.CommandPath(), "postfach "), err, c.UseLine())
			}
			return nil
		}
	}
	for _, sub := range cmd.Commands() {
		namedArgs(sub)
	}
}

// version is the module's version and the commit the binary was built
// from, as Go recorded them ("(devel)" and no commit for go run).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v += " (commit " + rev
		if modified == "true" {
			v += ", modified"
		}
		v += ")"
	}
	return v + ", " + bi.GoVersion
}

func (g *globals) logger() *slog.Logger {
	if !g.verbose {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(safeWriter{os.Stderr}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (g *globals) load() (*configs.Config, error) {
	cfg, err := configs.Load(g.configPath)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no config file at %s (create one with: postfach init)", g.configPath)
		}
		var list configs.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(os.Stderr, safe(e.Error()))
			}
			return nil, exitError{2}
		}
		return nil, err
	}
	// A password others can read is said on every run, as fetchmail
	// does; config check prints it with the other warnings.
	if !g.allWarnings {
		for _, w := range cfg.Warnings {
			if w.Always {
				fmt.Fprintln(os.Stderr, "postfach:", safe(w.Error()))
			}
		}
	}
	return cfg, nil
}

// openStore loads the config and opens its store: read-only
// (agent.OpenReadOnly) for a command that only reads it, else for
// writing (agent.Open).
func (g *globals) openStore(readOnly bool) (*configs.Config, *agent.Agent, error) {
	open := agent.Open
	if readOnly {
		open = agent.OpenReadOnly
	}
	return g.openWith(open)
}

// openToSearch opens the store for search and show (agent.OpenToSearch).
func (g *globals) openToSearch() (*configs.Config, *agent.Agent, error) {
	return g.openWith(agent.OpenToSearch)
}

func (g *globals) openWith(open func(*configs.Config, *slog.Logger) (*agent.Agent, error)) (*configs.Config, *agent.Agent, error) {
	cfg, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	a, err := open(cfg, g.logger())
	if err != nil {
		return nil, nil, err
	}
	return cfg, a, nil
}
