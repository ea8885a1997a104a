package imapconn

import (
	"context"
	"errors"
	"sync"

	"github.com/emersion/go-imap/v2/imapclient"
)

// Pending is a connection being dialed and logged in to in the background
// (Endpoint.DialAhead), so that the server's greeting and the login
// overlap other work (a sync opening its index). Exactly one of Wait and
// Close ends it.
type Pending struct {
	done   chan struct{}
	cancel context.CancelFunc
	c      *imapclient.Client
	err    error
	once   sync.Once
}

// DialAhead starts DialRetry in the background.
func (e *Endpoint) DialAhead(ctx context.Context, attempts int, log func(msg string, args ...any)) *Pending {
	ctx, cancel := context.WithCancel(ctx)
	p := &Pending{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(p.done)
		p.c, p.err = e.DialRetry(ctx, attempts, log)
	}()
	return p
}

var errPendingEnded = errors.New("imapconn: a connection dialed ahead, taken twice")

// Wait returns the connection once dialed (the caller's to close), or the
// dial's error; ctx ending first ends the dial too.
func (p *Pending) Wait(ctx context.Context) (*imapclient.Client, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		p.Close()
		return nil, ctx.Err()
	}
	taken := false
	p.once.Do(func() { taken = true })
	if !taken {
		return nil, errPendingEnded
	}
	p.cancel()
	return p.c, p.err
}

// Close ends a connection Wait did not take: its dial is stopped, or it
// is logged out of.
func (p *Pending) Close() {
	p.once.Do(func() {
		p.cancel()
		<-p.done
		if p.c != nil {
			Logout(context.Background(), p.c)
		}
	})
}
