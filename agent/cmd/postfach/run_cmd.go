package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/configs"
)

func newRunCmd(g *globals) *cobra.Command {
	var logFormat string
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent in the foreground: keep every account in sync until stopped",
		Long: `Run the agent: it syncs every account at start, then whenever the server
or the Maildir changes and every poll_interval, and waits out a lost
network (retrying with backoff, 1 s doubling to 1 min; one log line when an
account goes offline, one when it is back). An account that cannot work
until its config changes (wrong password, untrusted certificate) is parked
with state "error". It holds the store's lock: other postfach commands on
the store go through the agent (sync, status) or wait until it stops.

It stays in the foreground and logs to stderr (text, or JSON with
--log-format json; -v logs every sync). SIGHUP reloads the config file:
added accounts start, removed ones stop, changed ones restart, parked ones
are tried again; a config with errors is not loaded (the errors are
logged). SIGTERM or SIGINT stops it within 5 seconds; it then exits 0.
It exits 1 when it cannot start (the store held by another postfach, whose
process it names; the store's place refused), 2 when the config file has
errors.

With [serve] imap or pop3 set it also serves the local store to mail
clients on those addresses (see "postfach credentials" for their login);
an endpoint that cannot listen (its port in use) is logged in one line and
the rest of the agent goes on; SIGHUP tries it again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			setMemoryLimit()
			// SIGHUP is ours from here on (by default it would kill).
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			log, err := g.runLogger(logFormat)
			if err != nil {
				return err
			}
			cfg, err := g.load()
			if err != nil {
				return err
			}
			a, err := agent.Open(cfg, log)
			if err != nil {
				return err
			}
			// The promise: stopped within 5 s of SIGTERM, whatever hangs
			// (Run gives its work 3 s; closing the index, a service stuck
			// in a reload, get the rest). Every engine survives a stop
			// at any instant.
			context.AfterFunc(cmd.Context(), func() {
				time.AfterFunc(4*time.Second, func() {
					log.Warn("stopped with work in flight abandoned; the next start goes on from there")
					os.Exit(0)
				})
			})
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			reload := make(chan *configs.Config)
			go reloadOnHangup(ctx, g.configPath, hup, reload, log)
			err = a.Run(ctx, agent.RunOptions{Reload: reload, Upstream: agent.IdleUpstream, Local: agent.MaildirLocal, Endpoints: endpoints})
			if errors.Is(err, agent.ErrStopTimeout) {
				// Work still running uses the index: exit without
				// closing it (every engine survives a stop at any
				// instant).
				os.Exit(0)
			}
			a.Close()
			return err
		},
	}
	cmd.Flags().StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

// reloadOnHangup loads the config file again on each SIGHUP and hands it
// to the agent; a file with errors is logged and not handed over.
func reloadOnHangup(ctx context.Context, path string, hup <-chan os.Signal, reload chan<- *configs.Config, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		cfg, err := configs.Load(path)
		if err != nil {
			log.Error("config not reloaded: the agent goes on with the one it has", "file", path, "err", err)
			continue
		}
		for _, w := range cfg.Warnings {
			log.Warn("config", "warning", w.Error())
		}
		log.Info("config reloaded", "file", path)
		select {
		case <-ctx.Done():
			return
		case reload <- cfg:
		}
	}
}

// runLogger is the agent's log: on stderr, text or JSON, info and up (-v:
// debug, every sync).
func (g *globals) runLogger(format string) (*slog.Logger, error) {
	level := slog.LevelInfo
	if g.verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(safeWriter{os.Stderr}, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is neither text nor json", format)
}

// runMemoryLimit is the agent's soft limit on the memory the Go runtime
// holds (debug.SetMemoryLimit), unless GOMEMLIMIT sets one.
//
// The agent is a daemon that lives beside the user's other programs; its
// budget is 200 MB resident while it serves 10 clients from a
// 100,000-message store. Without a limit the heap may grow to twice what
// is live before a collection (GOGC=100), and further while the
// collector is short of CPU: with 10 clients syncing such a store it
// peaked at 200 MB of Go heap around 10 MB live. The limit makes the
// collector run earlier only when the heap nears it, and costs nothing
// below it; a live heap above it (a full sync of a very large account)
// is no failure: the limit is soft, and the runtime caps the collector
// at half the CPU then. 128 MiB leaves room for what is outside Go's
// heap: SQLite's page caches (16 MB for the writer, 4 MB per reader, see
// package index) and the binary's mapped code.
const runMemoryLimit = 128 << 20

// setMemoryLimit sets runMemoryLimit unless the environment sets a limit.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(runMemoryLimit)
	}
}
