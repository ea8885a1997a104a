// Command postfach is the command-line interface of postfach, a personal
// mail sync and archiving agent. It is thin: it parses flags, loads the
// config and calls into package agent.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/configs"
)

// exitError carries an exit status without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

type globals struct {
	configPath string
	verbose    bool
	cpuProfile string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		if interrupted {
			fmt.Fprintln(os.Stderr, "postfach: interrupted; the next run resumes where this one stopped")
			os.Exit(130)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(os.Stderr, "postfach:", line)
		}
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
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
	// For the developers: a CPU profile of one command (go tool pprof).
	root.PersistentFlags().StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile to `file`")
	root.PersistentFlags().MarkHidden("cpuprofile")
	var profile *os.File
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if g.cpuProfile == "" {
			return nil
		}
		f, err := os.Create(g.cpuProfile)
		if err != nil {
			return err
		}
		profile = f
		return pprof.StartCPUProfile(f)
	}
	root.PersistentPostRun = func(*cobra.Command, []string) {
		if profile != nil {
			pprof.StopCPUProfile()
			profile.Close()
		}
	}
	root.AddCommand(
		newInitCmd(g),
		newConfigCmd(g),
		newSyncCmd(g),
		newMigrateCmd(g),
		newStatusCmd(g),
		newSearchCmd(g),
		newDemoCmd(g),
	)
	return root
}

func (g *globals) logger() *slog.Logger {
	if !g.verbose {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
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
				fmt.Fprintln(os.Stderr, e)
			}
			return nil, exitError{2}
		}
		return nil, err
	}
	return cfg, nil
}
