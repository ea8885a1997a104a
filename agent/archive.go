package agent

import (
	"context"
	"errors"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// recordArchive records each known account's archive setting in the index
// (index.Tx.SetArchive), where the store's door reads it: an EXPUNGE
// through the local IMAP endpoint in an archive account moves the
// messages to its archive view (index.Store.Expunge). A sync run records
// it too. Accounts the index does not know yet have nothing to expunge.
func recordArchive(st *index.Store, cfg *configs.Config) error {
	// Read first: most opens change nothing, and need no write.
	same := true
	if err := st.Read(context.Background(), func(tx *index.ReadTx) error {
		for _, acct := range cfg.Accounts {
			id, err := tx.Account(acct.Name)
			if errors.Is(err, index.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			on, err := tx.ArchiveOn(id)
			if err != nil {
				return err
			}
			same = same && on == acct.Archive
		}
		return nil
	}); err != nil || same {
		return err
	}
	return st.Write(context.Background(), func(tx *index.Tx) error {
		for _, acct := range cfg.Accounts {
			id, err := tx.Account(acct.Name)
			if errors.Is(err, index.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			on, err := tx.ArchiveOn(id)
			if err != nil {
				return err
			}
			if on != acct.Archive {
				if err := tx.SetArchive(id, acct.Archive); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
