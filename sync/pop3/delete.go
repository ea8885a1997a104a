package pop3

import (
	"context"
	"errors"
	"fmt"

	"github.com/postfach/postfach/index"
)

// deleteOld marks for deletion the messages whose own content is stored and
// whose time has come, ends the session with QUIT, and forgets the deleted
// messages' identities once QUIT has succeeded. A message's content is
// known to be stored when this session downloaded and committed it (ours)
// or when check proved that the copy an earlier run stored is its own
// (proven); no other message is ever marked.
func (f *fetcher) deleteOld(ctx context.Context, c *Client, entries []entry) error {
	now := timeNow()
	var nums []int
	var ids []string
	for _, e := range entries {
		if e.id == "" || !(f.ours[e.num] || f.proven[e.num]) {
			continue // never delete what is not stored
		}
		if f.dueStored(e, f.ours[e.num], now) {
			nums = append(nums, e.num)
			ids = append(ids, e.id)
		}
	}
	if len(nums) > 0 {
		if err := c.DeleMany(ctx, nums); err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				return err
			}
			// Some are marked, some not: unmark all and delete nothing.
			f.log.Warn("pop3 server refused to delete a message; deleting none this time", "err", err)
			if err := c.Rset(); err != nil {
				return err
			}
			nums, ids = nil, nil
		}
	}
	if len(ids) > 0 {
		if err := hook("dele"); err != nil {
			return err
		}
	}
	if err := c.Quit(); err != nil {
		if len(ids) > 0 {
			return fmt.Errorf("pop3: deleting %d messages on the server: %w", len(ids), err)
		}
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	f.res.Deleted = len(ids)
	f.log.Info("deleted messages on the server", "count", len(ids))
	if err := hook("quit"); err != nil {
		return err
	}
	// The messages are gone: their identities name nothing now. (If this
	// does not happen, the next listing, which lacks them, forgets them.)
	err := f.o.Index.Write(context.WithoutCancel(ctx), func(tx *index.Tx) error {
		return tx.ForgetPOP3UIDLs(f.acct, ids)
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		delete(f.known, id)
	}
	return nil
}
