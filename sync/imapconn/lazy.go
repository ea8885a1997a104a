package imapconn

import (
	"context"
	"log/slog"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// LazyUploader is a run's MULTIAPPEND connection: dialed on first need,
// or ahead of it (Start), shared by the run's folders, closed at the end.
// Get returns nil where it cannot be had (Off, a server without
// MULTIAPPEND and LITERAL+, or a failed dial, not tried again); the
// caller then uploads with one APPEND per message on its own connection.
type LazyUploader struct {
	Endpoint *Endpoint
	Off      bool         // never dial: one APPEND each (Options.NoMultiAppend)
	Log      *slog.Logger // told why there is none; may be nil

	mu     sync.Mutex
	up     *Uploader
	ready  chan struct{}      // closed when the dial is over; nil: not started
	cancel context.CancelFunc // ends a dial under way
	closed bool
}

// Start dials the connection in the background, unless it is dialed or
// being dialed already, so that it is ready when the first upload comes;
// caps are the server's, as a logged-in connection has them. ctx bounds
// the dial; Close ends one still under way.
func (l *LazyUploader) Start(ctx context.Context, caps imap.CapSet) {
	l.start(ctx, caps)
}

func (l *LazyUploader) start(ctx context.Context, caps imap.CapSet) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ready != nil {
		return l.ready
	}
	ready := make(chan struct{})
	l.ready = ready
	if l.Off || l.closed {
		close(ready)
		return ready
	}
	if !caps.Has(imap.CapMultiAppend) || !caps.Has(imap.CapLiteralPlus) {
		close(ready)
		return ready
	}
	ctx, l.cancel = context.WithCancel(ctx)
	go func() {
		defer close(ready)
		up, err := l.Endpoint.DialUploader(ctx)
		if err != nil {
			if l.Log != nil && ctx.Err() == nil {
				l.Log.Info("no MULTIAPPEND connection; one APPEND each", "err", err)
			}
			return
		}
		l.mu.Lock()
		closed := l.closed
		if !closed {
			l.up = up
		}
		l.mu.Unlock()
		if closed {
			up.Close()
		}
	}()
	return ready
}

// Get returns the connection, dialing it the first time (or waiting for
// the dial Start began); c is a logged-in connection to the same server,
// for its capabilities. It returns nil once the connection broke: it
// broke in another folder's upload, and this folder uploads on its own
// connection rather than fail with that error.
func (l *LazyUploader) Get(ctx context.Context, c *imapclient.Client) *Uploader {
	l.mu.Lock()
	var ready <-chan struct{} = l.ready
	l.mu.Unlock()
	if ready == nil {
		ready = l.start(ctx, c.Caps())
	}
	select {
	case <-ready:
	case <-ctx.Done():
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.up != nil && l.up.dead.Load() {
		return nil
	}
	return l.up
}

// Close logs out of the connection, if it was dialed; a dial still under
// way is ended and waited for, so that nothing of the run's outlives it
// but the wait for LOGOUT's answer (Uploader.Close).
func (l *LazyUploader) Close() {
	l.mu.Lock()
	l.closed = true
	ready, cancel := l.ready, l.cancel
	l.mu.Unlock()
	if cancel != nil {
		cancel() // ends a dial under way; releases a finished one's context
	}
	if ready != nil {
		<-ready
	}
	l.mu.Lock()
	up := l.up
	l.mu.Unlock()
	if up != nil {
		up.Close()
	}
}
