package imapsync

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postfach/postfach/index"
	"github.com/postfach/postfach/maildir"
)

// delivered is a message written to tmp/, waiting for the committer.
type delivered struct {
	job      *folderJob
	dlv      *maildir.Delivery
	uid      uint32
	flags    maildir.Flags
	keywords []string
	idate    time.Time
	rfcSize  int64
	header   index.Header
}

// fetch downloads one chunk of new messages, streaming each body into a
// tmp/ file, and hands them to the committer.
func (w *worker) fetch(ctx context.Context, j *folderJob, uids []uint32) error {
	if err := w.selectFolder(j); err != nil {
		return fmt.Errorf("SELECT: %w", err)
	}
	set := make([]imap.UID, len(uids))
	for i, u := range uids {
		set[i] = imap.UID(u)
	}
	opts := &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}
	cmd := w.c.Fetch(imap.UIDSetNum(set...), opts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		d, err := readMessage(j, msg)
		if err != nil {
			// The response is half read: the connection cannot be used
			// again (draining the command would race with go-imap's reader).
			return abort(w.c, err)
		}
		if d == nil {
			continue
		}
		j.acquire(1)
		select {
		case w.s.commit.in <- d:
		case <-ctx.Done():
			d.dlv.Abort()
			j.release()
			return abort(w.c, ctx.Err())
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("FETCH: %w", err)
	}
	return nil
}

// abort closes a connection whose command was left half read and returns
// err marked as a connection failure, so the worker dials again.
//
// It does not wait for the close: go-imap's Client.Close waits for its
// reader goroutine, which may itself wait for this goroutine to read a
// literal it handed over (a deadlock seen on SIGTERM mid-download), and
// draining the response instead races with that reader. The socket is
// closed at once; the reader goroutine of an aborted connection is left
// behind, which a one-shot run does not notice.
func abort(c *imapclient.Client, err error) error {
	go c.Close()
	return fmt.Errorf("%w: %w", errConn, err)
}

// readMessage consumes one FETCH response. It returns nil (and no error)
// for a response without body or UID, e.g. a flag update.
func readMessage(j *folderJob, msg *imapclient.FetchMessageData) (*delivered, error) {
	d := &delivered{job: j}
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			d.uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			d.flags, d.keywords = maildir.FlagsFromIMAP(it.Flags)
		case imapclient.FetchItemDataInternalDate:
			d.idate = it.Time
		case imapclient.FetchItemDataRFC822Size:
			d.rfcSize = it.Size
		case imapclient.FetchItemDataBodySection:
			if d.dlv != nil {
				io.Copy(io.Discard, it.Literal)
				continue
			}
			dlv, err := j.dir.NewDelivery()
			if err != nil {
				return nil, err
			}
			if _, err := io.Copy(dlv, it.Literal); err != nil {
				dlv.Abort()
				return nil, fmt.Errorf("storing message: %w", err)
			}
			if err := dlv.Close(); err != nil {
				dlv.Abort()
				return nil, fmt.Errorf("storing message: %w", err)
			}
			d.dlv = dlv
		}
	}
	if d.dlv == nil || d.uid == 0 {
		if d.dlv != nil {
			d.dlv.Abort()
		}
		return nil, nil
	}
	d.header = index.ParseHeader(d.dlv.Header())
	if !d.idate.IsZero() {
		os.Chtimes(d.dlv.Path(), d.idate, d.idate)
	}
	return d, nil
}
