// PLACEHOLDER: replaced by Part B at merge

package index

import (
	"bufio"
	"bytes"
	"context"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/postfach/postfach/maildir"
)

// IMAPView returns the message's ENVELOPE and BODYSTRUCTURE (extended),
// computed once per message and kept in the index.
//
// PLACEHOLDER (Part A): computed from the file on every call, with
// go-imap's server helpers.
func (s *Store) IMAPView(ctx context.Context, m *Message) (*imap.Envelope, imap.BodyStructure, error) {
	var f *Folder
	err := s.Read(ctx, func(tx *ReadTx) error {
		var err error
		f, err = tx.Folder(m.Folder)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	b, err := s.OpenMessage(f, m)
	if err != nil {
		return nil, nil, err
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(maildir.NewCRLFWriter(&buf), b); err != nil {
		return nil, nil, err
	}
	raw := buf.Bytes()
	bs := imapserver.ExtractBodyStructure(bytesReader(raw))
	h, _ := textproto.ReadHeader(bufioReader(raw))
	return imapserver.ExtractEnvelope(h), bs, nil
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func bufioReader(b []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(b)) }
