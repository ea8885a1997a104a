package corpus

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The dictionaries of Debian's wamerican and wngerman packages, the
// natural-language corpus's word lists.
const (
	DictEnglish = "/usr/share/dict/american-english"
	DictGerman  = "/usr/share/dict/ngerman"
)

// Vocabulary sizes: the English list keeps every plain lower-case word of
// wamerican (about 64,000); the German one a deterministic sample of
// wngerman's words (it holds 350,000 inflected forms).
const (
	maxEnglishWords = 70000
	maxGermanWords  = 40000
)

// Zipf-Mandelbrot law of the word ranks: p(r) ∝ 1/(r+zipfQ)^zipfS, r from
// 1. With s = 1 over 64,000 words the top word ("the") is about 6% of the
// text and half the text is the 150 most frequent words, as in English.
const (
	zipfS = 1.0
	zipfQ = 2.7
)

// Vocabulary is the word list of a natural-language corpus (Options.Natural):
// per language the words by frequency rank and a Zipf distribution over
// them. Load it with LoadVocabulary; the same dictionary files always give
// the same vocabulary, so the corpus stays a function of (seed, i, opts).
type Vocabulary struct {
	english, german lang
	// Source names the dictionary files, their word counts and a hash of
	// their contents, for reports.
	Source string
}

// lang is one language's words, most frequent first, and the cumulative
// distribution of their ranks.
type lang struct {
	words []string
	cdf   []float64 // cdf[r] = P(rank <= r), rank from 0
}

// LoadVocabulary reads DictEnglish and DictGerman. A missing file is an
// error naming the Debian package to install.
func LoadVocabulary() (*Vocabulary, error) {
	return LoadVocabularyFrom(DictEnglish, DictGerman)
}

// LoadVocabularyFrom reads the given English and German word lists (one
// word a line, UTF-8).
func LoadVocabularyFrom(english, german string) (*Vocabulary, error) {
	en, enSum, err := readDict(english, "wamerican", plainEnglish)
	if err != nil {
		return nil, err
	}
	de, deSum, err := readDict(german, "wngerman", plainGerman)
	if err != nil {
		return nil, err
	}
	v := &Vocabulary{
		english: rank(en, englishTop, maxEnglishWords),
		german:  rank(de, germanTop, maxGermanWords),
	}
	if len(v.english.words) < 1000 || len(v.german.words) < 1000 {
		return nil, fmt.Errorf("word lists %s and %s hold %d and %d usable words: not dictionaries", english, german, len(en), len(de))
	}
	v.Source = fmt.Sprintf("%s (%d words, sha256 %x) and %s (%d of %d words, sha256 %x)",
		english, len(v.english.words), enSum[:6], german, len(v.german.words), len(de), deSum[:6])
	return v, nil
}

func readDict(path, pkg string, keep func(string) bool) ([]string, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, sum, fmt.Errorf("word list %s is missing: install Debian's %s (apt-get install %s)", path, pkg, pkg)
		}
		return nil, sum, fmt.Errorf("word list: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	var words []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		h.Write(sc.Bytes())
		h.Write([]byte{'\n'})
		if w := sc.Text(); keep(w) {
			words = append(words, w)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, sum, fmt.Errorf("word list %s: %w", path, err)
	}
	copy(sum[:], h.Sum(nil))
	return words, sum, nil
}

// plainEnglish keeps lower-case ASCII words (no names, no possessives).
func plainEnglish(w string) bool {
	if len(w) < 2 || len(w) > 16 {
		return false
	}
	for i := 0; i < len(w); i++ {
		if w[i] < 'a' || w[i] > 'z' {
			return false
		}
	}
	return true
}

// plainGerman keeps words of letters only, not all capitals (no
// abbreviations), with upper case only at the start (nouns).
func plainGerman(w string) bool {
	n := utf8.RuneCountInString(w)
	if n < 2 || n > 20 || !utf8.ValidString(w) {
		return false
	}
	for j, c := range w {
		if !unicode.IsLetter(c) || (j > 0 && !unicode.IsLower(c)) {
			return false
		}
	}
	return true
}

// rank orders words by frequency: first the language's most common words
// (top, those the dictionary holds), then the rest in a fixed pseudo-random
// order biased towards short words (short words are frequent), at most max
// words in all.
func rank(words, top []string, max int) lang {
	have := make(map[string]bool, len(words))
	for _, w := range words {
		have[w] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, w := range top {
		if have[w] && !seen[w] {
			out = append(out, w)
			seen[w] = true
		}
	}
	type keyed struct {
		w   string
		key float64
	}
	rest := make([]keyed, 0, len(words))
	for _, w := range words {
		if seen[w] {
			continue
		}
		seen[w] = true
		h := fnv.New64a()
		h.Write([]byte(w))
		u := float64(h.Sum64()>>11) / (1 << 53)
		rest = append(rest, keyed{w, float64(utf8.RuneCountInString(w)) + 8*u})
	}
	sort.Slice(rest, func(a, b int) bool {
		if rest[a].key != rest[b].key {
			return rest[a].key < rest[b].key
		}
		return rest[a].w < rest[b].w
	})
	for _, k := range rest {
		if len(out) >= max {
			break
		}
		out = append(out, k.w)
	}
	cdf := make([]float64, len(out))
	var sum float64
	for r := range out {
		sum += 1 / math.Pow(float64(r+1)+zipfQ, zipfS)
		cdf[r] = sum
	}
	for r := range cdf {
		cdf[r] /= sum
	}
	return lang{words: out, cdf: cdf}
}

// word draws one word by its Zipf distribution.
func (l *lang) word(r *rand.Rand) string {
	return l.words[l.rankOf(r.Float64())]
}

// rankOf is the rank whose cumulative probability first reaches u.
func (l *lang) rankOf(u float64) int {
	i, _ := slices.BinarySearch(l.cdf, u)
	return min(i, len(l.words)-1)
}

// EnglishWord returns the English word of frequency rank r (0 is the most
// frequent), and its probability per word of English text.
func (v *Vocabulary) EnglishWord(r int) (string, float64) { return v.english.at(r) }

// GermanWord is EnglishWord for the German vocabulary.
func (v *Vocabulary) GermanWord(r int) (string, float64) { return v.german.at(r) }

// EnglishWords and GermanWords are the vocabulary sizes.
func (v *Vocabulary) EnglishWords() int { return len(v.english.words) }
func (v *Vocabulary) GermanWords() int  { return len(v.german.words) }

func (l *lang) at(r int) (string, float64) {
	r = max(0, min(r, len(l.words)-1))
	p := l.cdf[r]
	if r > 0 {
		p -= l.cdf[r-1]
	}
	return l.words[r], p
}

// englishTop are the most frequent English words, in order (after the
// usual frequency lists of written English, mail words mixed in).
var englishTop = strings.Fields(`
the of and to in is you that it he was for on are as with his they at be
this have from or one had by but not what all were we when your can said
there use an each which she do how their if will up other about out many
then them these so some her would make like him into time has look two
more write go see number no way could people my than first been call who
its now find long down day did get come made may part over new after
thanks please meeting week today tomorrow project report attached
also just know think work need want good next back any only should here
well because very through much before where most our us again still
between never under last while might same each those both little
question update review send sent received information team office call
change problem time order price account payment file files version
release issue issues plan schedule monday tuesday wednesday thursday
friday weekend morning afternoon evening
`)

// germanTop are the most frequent German words, in order.
var germanTop = strings.Fields(`
der die und in den von zu das mit sich des auf für ist im dem nicht ein
eine als auch es an werden aus er hat dass sie nach wird bei einer um am
sind noch wie einem über einen so zum war haben nur oder aber vor zur bis
mehr durch man sein wurde sei können ich wir ihr uns euch schon
bitte danke Grüße Termin Woche heute morgen Projekt Bericht Anhang
gerne gern müssen möchte würde könnte hätte wäre dürfen sollen
Frage Änderung Rechnung Besprechung Büro Übersicht Größe Prüfung
nächste nächsten später früher schön natürlich für grüßen
`)
