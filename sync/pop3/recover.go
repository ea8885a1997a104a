package pop3

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/mail"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"

	"github.com/postfach/postfach/index"
)

// recover resolves the pending downloads: a file that reached cur/ or new/
// is indexed (with its UIDL, as if the batch had finished); a file that did
// not is forgotten (it is in tmp/, if anywhere, and CleanOwnTmp removes it).
func (f *fetcher) recover(ctx context.Context) error {
	var pend []index.POP3Pending
	err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
		var err error
		pend, err = tx.POP3PendingList(f.acct)
		return err
	})
	if err != nil || len(pend) == 0 {
		return err
	}
	for _, p := range pend {
		var folder *index.Folder
		err := f.o.Index.Read(ctx, func(tx *index.ReadTx) error {
			var err error
			folder, err = tx.Folder(p.Folder)
			return err
		})
		if err != nil {
			return err
		}
		dir, err := f.o.Index.Dir(*folder)
		if err != nil {
			return err
		}
		ent, err := dir.Find(p.Key, "")
		if errors.Is(err, fs.ErrNotExist) {
			f.log.Debug("dropping a pending download that never reached the folder", "uidl", p.UIDL)
			err = f.o.Index.Write(ctx, func(tx *index.Tx) error { return tx.DonePOP3Pending(f.acct, p.UIDL) })
			if err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		// The file's contents were made durable before its rename; IndexFile
		// syncs the directory (its name may not be yet) before a row
		// points at it.
		hh := newHeaderHasher(false)
		var hdrHash [32]byte
		_, err = f.o.Index.IndexFile(ctx, index.Found{Folder: folder, Entry: ent, RFC822Size: p.RFC822Size, Tee: hh,
			With: func(tx *index.Tx, id index.MessageID) error {
				hdrHash = hh.Sum()
				u := index.POP3UIDL{MessageID: id, StoredAt: timeNow(), RFC822Size: p.RFC822Size, HeaderSHA256: hdrHash[:]}
				if err := tx.AddPOP3UIDL(f.acct, p.UIDL, u); err != nil {
					return err
				}
				return tx.DonePOP3Pending(f.acct, p.UIDL)
			}})
		if err != nil {
			return err
		}
		f.res.Recovered++
		f.log.Info("indexed a message an interrupted run had stored", "uidl", p.UIDL, "key", ent.Key)
	}
	return nil
}

// internalDate is the date a message arrived: the date of its topmost
// Received field, else its Date field, else now.
func internalDate(hdr []byte, h index.Header) time.Time {
	th, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(hdr)))
	if rcv := th.Get("Received"); rcv != "" {
		if i := strings.LastIndexByte(rcv, ';'); i >= 0 {
			s := strings.Join(strings.Fields(rcv[i+1:]), " ")
			if t, err := mail.ParseDate(s); err == nil {
				return t
			}
		}
	}
	if !h.Date.IsZero() {
		return h.Date
	}
	return time.Now()
}
