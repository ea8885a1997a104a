package agent

import (
	"errors"
	"log/slog"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// OpenReadOnly opens the store for a command that only reads it (postfach
// search, show, status, queue): the same checks of the store's place as
// Open, then the index read-only (index.OpenStoreReadOnly: one
// connection, no write, no wait for another postfach's open), without
// recording the archive setting (a writer's business: recordArchive).
// When the index needs a writer first (none yet, an older schema:
// index.ErrNeedsWrite) it is Open, which creates or migrates it, as every
// command did before. The Agent's index refuses writes otherwise: a
// command that turns out to need one (search with text to index) opens
// the store again with Open.
func OpenReadOnly(cfg *configs.Config, log *slog.Logger) (*Agent, error) {
	return openReadOnly(cfg, log, true)
}

// OpenToSearch is OpenReadOnly for postfach search and show, without its
// walk of each account's folders (checkAccounts), which guards what a
// sync would take for mail to upload: searching the index reads neither.
// A search answers in milliseconds, and the walk was a twentieth of them.
func OpenToSearch(cfg *configs.Config, log *slog.Logger) (*Agent, error) {
	return openReadOnly(cfg, log, false)
}

func openReadOnly(cfg *configs.Config, log *slog.Logger, accounts bool) (*Agent, error) {
	if err := checkPlace(cfg.Store.Path); err != nil {
		return nil, err
	}
	st, err := index.OpenStoreReadOnly(cfg.Store.Path)
	if errors.Is(err, index.ErrNeedsWrite) {
		return Open(cfg, log)
	}
	if err != nil {
		return nil, err
	}
	if !accounts {
		return &Agent{cfg: cfg, store: st, log: log}, nil
	}
	if err := checkAccounts(cfg, st); err != nil {
		st.Close()
		return nil, err
	}
	return &Agent{cfg: cfg, store: st, log: log}, nil
}
