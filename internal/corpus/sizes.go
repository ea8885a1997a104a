package corpus

import (
	"bytes"
	"math"
)

// The size mix of real mail (Options.RealSizes), by share of messages:
//
//	 8% multipart/alternative (text/plain + text/html of the same text)
//	 3% multipart/mixed: a text part and one (60%) or two (40%)
//	    attachments, each 100 KB to 5 MB before base64 (log-uniform)
//	89% a single text part (us-ascii 7bit, or utf-8 quoted-printable)
//
// The text of every message is log-normal in size around 6 KB (median
// 6000 bytes, sigma 0.7: about 90% between 2 and 20 KB, clamped to 512
// bytes .. 256 KB). A message averages about 79 KB (the attachments make
// most of it: 7.3 GB for 100,000 messages). The headers, folders, flags,
// dates and Message-IDs are drawn as in the default corpus.
const (
	realTextMedian   = 6000
	realTextSigma    = 0.7
	realTextMin      = 512
	realTextMax      = 256 << 10
	realAttachMin    = 100 << 10
	realAttachMax    = 5 << 20
	realAlternativeP = 8 // percent
	realAttachedP    = 3 // percent, after the alternative ones
)

// RealAverageBytes is about what a message of a RealSizes corpus averages
// (CRLF line ends), for estimating disk space before generating one.
const RealAverageBytes = 79 << 10

// realBody is the body of a RealSizes message; k (the default corpus's
// kind) picks the text's language and encoding.
func (g *gen) realBody(k kind) part {
	r := g.r
	p := r.IntN(100)
	size := int(math.Exp(math.Log(realTextMedian) + realTextSigma*r.NormFloat64()))
	size = min(max(size, realTextMin), realTextMax)
	words := englishWords
	if k == kindPlainQP || k == kindIntl {
		words = germanWords
	}
	var paras []string
	for n := 0; n < size; {
		para := g.paragraph(words)
		paras = append(paras, para)
		n += len(para) + 2
	}
	switch {
	case p < realAlternativeP:
		return g.multipart("alternative", g.plainQP(paras), g.html(paras))
	case p < realAlternativeP+realAttachedP:
		parts := []part{g.plainQP(paras)}
		n := 1
		if r.IntN(10) < 4 {
			n = 2
		}
		for range n {
			lo, hi := math.Log(realAttachMin), math.Log(realAttachMax)
			parts = append(parts, g.attachment(int(math.Exp(lo+(hi-lo)*r.Float64()))))
		}
		return g.multipart("mixed", parts...)
	case k == kindPlainASCII:
		var b bytes.Buffer
		for j, para := range paras {
			if j > 0 {
				b.WriteString("\r\n")
			}
			wrap(&b, para, 72)
		}
		return part{
			header: []string{"Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"},
			body:   b.Bytes(),
		}
	default:
		return g.plainQP(paras)
	}
}
