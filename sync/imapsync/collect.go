package imapsync

import (
	"bytes"
	"fmt"

	"github.com/emersion/go-imap/v2/imapclient"
)

// MaxCollected is the largest body section CollectMessage reads: 4 MiB,
// far above any real header section (a Message-ID field is well under a
// KiB; a message may carry a header line of a megabyte).
const MaxCollected = 4 << 20

// CollectMessage reads one FETCH response into a buffer, as go-imap's
// FetchMessageData.Collect does, with these differences:
//
//   - A literal that ends before its announced size is an error (go-imap's
//     literal reader just ends early when the connection dies).
//   - After a literal failed, it stops at once. go-imap's Collect goes on
//     to discard the failed literal, reading the connection's buffer again
//     while go-imap's reader goroutine, released by the failure, reads the
//     same buffer (a data race in v2.0.0-beta.8, unchanged in beta.9).
//   - A body section is bounded: a literal of more than MaxCollected bytes
//     is an error before a byte of it is read (CollectMessage collects
//     header sections: identities, not whole messages).
//
// After an error the response is half read: the caller must give up the
// connection (see abortFetch).
func CollectMessage(msg *imapclient.FetchMessageData) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{SeqNum: msg.SeqNum}
	for {
		item := msg.Next()
		if item == nil {
			return buf, nil
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			buf.UID = it.UID
		case imapclient.FetchItemDataFlags:
			buf.Flags = it.Flags
		case imapclient.FetchItemDataRFC822Size:
			buf.RFC822Size = it.Size
		case imapclient.FetchItemDataInternalDate:
			buf.InternalDate = it.Time
		case imapclient.FetchItemDataModSeq:
			buf.ModSeq = it.ModSeq
		case imapclient.FetchItemDataBodySection:
			var b []byte
			if it.Literal != nil {
				if n := it.Literal.Size(); n > MaxCollected {
					return buf, fmt.Errorf("UID %d: the server sends a section of %d bytes where a header was asked for (at most %d)", buf.UID, n, MaxCollected)
				}
				var w bytes.Buffer
				if err := readLiteral(&w, it.Literal); err != nil {
					return buf, err
				}
				b = w.Bytes()
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: it.Section, Bytes: b})
		case imapclient.FetchItemDataBinarySection, imapclient.FetchItemDataBodyStructure, imapclient.FetchItemDataEnvelope:
			return buf, fmt.Errorf("imapsync: CollectMessage does not read %T", item)
		}
	}
}
