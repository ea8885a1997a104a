package corpus

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Person is a correspondent of the natural-language corpus.
type Person struct {
	Name, Email string
	German      bool // writes mostly German
}

// Address is the person as a From/To/Cc value, the name RFC 2047 encoded
// when it is not ASCII.
func (p Person) Address() string { return headerAddr(p.Name, p.Email) }

// Me is the mailbox owner of the natural-language corpus: To of received
// mail, From of the Sent folder's.
var Me = Person{Name: "Paula Fach", Email: "paula@postfach.example"}

// NumCorrespondents is how many people write in a natural-language corpus.
const NumCorrespondents = 300

// Correspondent returns correspondent k (0 <= k < NumCorrespondents). Low
// k write more often: senders are drawn by a Zipf distribution over k.
func Correspondent(k int) Person { return correspondents[k] }

var correspondents = makeCorrespondents(NumCorrespondents)

// correspondentCDF is the Zipf distribution of the senders.
var correspondentCDF = func() []float64 {
	cdf := make([]float64, NumCorrespondents)
	var sum float64
	for k := range cdf {
		sum += 1 / math.Pow(float64(k)+2, 0.9)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return cdf
}()

func drawCorrespondent(r *rand.Rand) Person {
	k, _ := slices.BinarySearch(correspondentCDF, r.Float64())
	return correspondents[min(k, NumCorrespondents-1)]
}

// makeCorrespondents makes n distinct people from fixed name lists, about
// a third of them German (umlauts in names, .de/.at/.ch domains).
func makeCorrespondents(n int) []Person {
	r := rand.New(rand.NewPCG(0x636f7272, 0x65737064))
	used := map[string]bool{}
	out := make([]Person, 0, n)
	for len(out) < n {
		german := r.IntN(3) == 0
		var first, last, domain string
		if german {
			first, last, domain = pick(r, germanFirst), pick(r, germanLast), pick(r, germanDomains)
		} else {
			first, last, domain = pick(r, englishFirst), pick(r, englishLast), pick(r, englishDomains)
		}
		local := asciiFold(strings.ToLower(first)) + "." + asciiFold(strings.ToLower(last))
		if r.IntN(5) == 0 {
			local = asciiFold(strings.ToLower(first[:1] + last))
		}
		email := local + "@" + domain
		if used[email] {
			continue
		}
		used[email] = true
		out = append(out, Person{Name: first + " " + last, Email: email, German: german})
	}
	return out
}

// asciiFold writes German letters the way mail addresses do (ü -> ue).
func asciiFold(s string) string {
	return strings.NewReplacer("ä", "ae", "ö", "oe", "ü", "ue", "ß", "ss", "Ä", "Ae", "Ö", "Oe", "Ü", "Ue", "é", "e", "ø", "o").Replace(s)
}

var englishFirst = strings.Fields(`James Mary Robert Patricia John Jennifer Michael Linda David
Elizabeth William Barbara Richard Susan Joseph Jessica Thomas Sarah Charles Karen Chris
Nancy Daniel Lisa Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly
Paul Emily Andrew Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Melissa George
Deborah Timothy Stephanie Ronald Rebecca Edward Sharon Jason Laura Jeffrey Cynthia Ryan
Amy Jacob Kathleen Gary Angela Nicholas Shirley Eric Anna Jonathan Brenda Stephen Pamela
Larry Emma Justin Nicole Scott Helen Brandon Samantha Benjamin Katherine Samuel Christine
Gregory Debra Alexander Rachel Frank Carolyn Patrick Janet Raymond Catherine Jack Maria
Dennis Heather Jerry Diane Tyler Ruth Aaron Julie Jose Olivia Adam Joyce Nathan Virginia
Zoë Chloé Renée André`)

var englishLast = strings.Fields(`Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez
Martinez Hernandez Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee
Perez Thompson White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King
Wright Scott Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell
Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes
Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey
Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett
Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster`)

var germanFirst = strings.Fields(`Jürgen Björn Sören Jörg Günther Käthe Jürgen Uwe Dieter Klaus
Sabine Ursula Monika Petra Stefanie Andreas Michael Thomas Frank Markus Katrin Anja Birgit
Jörn Ölaf Änne Gerd Hannelore Wolfgang Helmut Renate Ingrid Brigitte Günter Horst Bärbel
Lena Lukas Jonas Leonie Hannah Felix Maximilian Jan Tobias Julia Laura Lea Sophie Marie
Mia Emma Paul Ben Elias Noah Finn Luis Jürgen Zoë`)

var germanLast = strings.Fields(`Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Schulz
Hoffmann Schäfer Koch Bauer Richter Klein Wolf Schröder Neumann Schwarz Zimmermann Braun
Krüger Hofmann Hartmann Lange Schmitt Werner Schmitz Krause Meier Lehmann Schmid Schulze
Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz Möller Weiß
Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz
Baumann Franke Albrecht Schuster Simon Ludwig Böhm Winter Kraus Martin Schumacher Krämer
Vogt Stein Jäger Otto Sommer Groß Seidel Heinrich Brandt Haas Schreiber Graf Schulte
Dietrich Ziegler Kuhn Kühn Pohl Engel Horn Busch Bergmann Thomas Voigt Sauer Arnold
Wolff Pfeiffer Förster Größer Ölschläger Bäcker Dürr Gärtner Süß`)

var englishDomains = strings.Fields(`example.com example.org example.net mail.example.com
corp.example.com university.example.edu startup.example.io bigbank.example.com
consulting.example.co.uk gmail.example.com fastmail.example.com lists.example.org
hospital.example.org city.example.gov design.example.studio`)

var germanDomains = strings.Fields(`example.de firma.example.de uni-example.de web.example.de
gmx.example.de posteo.example.de example.at example.ch stadtwerke.example.de
verein.example.de kanzlei.example.de`)

// automated are machine senders and their subject templates (one %d).
var automated = []struct {
	from    Person
	subject string
	german  bool
}{
	{Person{Name: "GitHub", Email: "notifications@github.example"}, "[postfach/postfach] Pull request #%d: sync fixes", false},
	{Person{Name: "Online Shop", Email: "orders@shop.example.com"}, "Your order #%d has shipped", false},
	{Person{Name: "Deutsche Bahn", Email: "buchung@bahn.example.de"}, "Ihre Buchungsbestätigung (Auftrag %d)", true},
	{Person{Name: "Stadtwerke", Email: "rechnung@stadtwerke.example.de"}, "Ihre Rechnung Nr. %d", true},
	{Person{Name: "Calendar", Email: "calendar@corp.example.com"}, "Invitation: Weekly sync #%d", false},
	{Person{Name: "Bank", Email: "noreply@bigbank.example.com"}, "Your statement %d is ready", false},
}

// headerAddr is "Name <email>", the name encoded (RFC 2047) or quoted as
// needed.
func headerAddr(name, email string) string {
	if name == "" {
		return email
	}
	for _, c := range name {
		if c >= 0x80 {
			return addr(qEncode(name), email)
		}
	}
	if strings.ContainsAny(name, `"(),.:;<>@[\]`) {
		return addr(fmt.Sprintf("%q", name), email)
	}
	return addr(name, email)
}
