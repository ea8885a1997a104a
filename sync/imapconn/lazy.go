package imapconn

import (
	"context"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// LazyUploader is a run's MULTIAPPEND connection: dialed on first need,
// shared by the run's folders, closed at the end. Get returns nil where
// it cannot be had (Off, a server without MULTIAPPEND and LITERAL+, or a
// failed dial, not tried again); the caller then uploads with one APPEND
// per message on its own connection.
type LazyUploader struct {
	Endpoint *Endpoint
	Off      bool         // never dial: one APPEND each (Options.NoMultiAppend)
	Log      *slog.Logger // told why there is none; may be nil

	mu    sync.Mutex
	up    *Uploader
	tried bool
}

// Get returns the connection, dialing it the first time; c is a logged-in
// connection to the same server, for its capabilities.
func (l *LazyUploader) Get(ctx context.Context, c *imapclient.Client) *Uploader {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tried {
		if l.up != nil && l.up.dead.Load() {
			// It broke in another folder's upload: this folder uploads
			// on its own connection rather than fail with that error.
			return nil
		}
		return l.up
	}
	l.tried = true
	if l.Off {
		return nil
	}
	if caps := c.Caps(); !caps.Has(imap.CapMultiAppend) || !caps.Has(imap.CapLiteralPlus) {
		return nil
	}
	up, err := l.Endpoint.DialUploader(ctx)
	if err != nil {
		if l.Log != nil {
			l.Log.Info("no MULTIAPPEND connection; one APPEND each", "err", err)
		}
		return nil
	}
	l.up = up
	return up
}

// Close logs out of the connection, if it was dialed.
func (l *LazyUploader) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up != nil {
		l.up.Close()
	}
}
