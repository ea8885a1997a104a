package corpus

import (
	"math/rand/v2"
	"strings"
)

// terminators end sentences; mostly full stops.
var terminators = []byte(".......?!")

type sender struct{ name, email string }

var senders = []string{
	"Alice Example <alice@example.org>",
	"Bob Builder <bob@example.net>",
	"Carol Jones <carol.jones@example.com>",
	"Dave Miller <dave@lists.example.org>",
	"Eve Adams <eve@example.org>",
	"Frank O'Neil <frank@example.co.uk>",
	"\"Grace Hopper (Navy)\" <grace@example.mil>",
	"Heidi Klum <heidi@example.de>",
	"Ivan Petrov <ivan@example.ru>",
	"Judy <judy@example.org>",
	"notifications@example.com",
	"GitHub <noreply@github.example>",
}

var germanSenders = []sender{
	{"Jürgen Müller", "juergen@example.de"},
	{"Björn Größer", "bjoern@example.de"},
	{"Änne Weiß", "aenne.weiss@example.at"},
	{"Zoë Ölschläger", "zoe@example.ch"},
}

var japaneseSenders = []sender{
	{"山田太郎", "taro.yamada@example.jp"},
	{"佐藤花子", "hanako@example.jp"},
	{"鈴木一郎", "ichiro@example.jp"},
}

var germanSubjects = []string{
	"Grüße aus München",
	"Überweisung für März – bitte prüfen",
	"Einladung zur Weihnachtsfeier im Büro",
	"Änderungen am Entwurf für die Präsentation",
	"Größenänderung der Dateiablage: Übersicht und nächste Schritte für das Team",
}

var japaneseSubjects = []string{
	"会議の議事録について",
	"来週の打ち合わせの件",
	"【重要】システムメンテナンスのお知らせ（日本語の長い件名のテストです）",
	"お疲れ様です",
}

var japaneseSentences = []string{
	"お世話になっております。",
	"先日の会議の議事録を添付いたします。",
	"ご確認のほど、よろしくお願いいたします。",
	"来週の予定について相談させてください。",
	"何かご不明な点がございましたら、お気軽にお問い合わせください。",
	"本日は晴天なり。",
	"メールの同期テストを行っています。",
}

func japaneseParagraphs(r *rand.Rand) []string {
	paras := make([]string, 1+r.IntN(4))
	for p := range paras {
		var b strings.Builder
		for range 2 + r.IntN(5) {
			b.WriteString(pick(r, japaneseSentences))
		}
		paras[p] = b.String()
	}
	return paras
}

var englishWords = strings.Fields(`
the of and to in is that for it as was with on be by this are from at or
have an they which one you had not but what all were when we there can
mail sync folder server client message flag draft archive invoice meeting
project release build test deploy review patch commit branch merge
quarterly report budget schedule agenda minutes lunch coffee weekend
network latency timeout retry backoff index cache store disk memory
please thanks regards kindly attached below above update status question
answer follow up tomorrow today yesterday next week monday friday
`)

var germanWords = strings.Fields(`
der die das und zu den nicht von sie ist des sich mit dem dass er es ein
ich auf so eine auch als an nach wie im für man aber aus durch wenn nur
Grüße schön über Größe Bücher Tür Mädchen Straße Fußball Brötchen Käse
Übersicht Änderung Prüfung Bürokratie Frühstück Gemütlichkeit Ärger
Löwenzahn Häuser Äpfel müssen können dürfen möchten wäre hätte
Mail Ordner Server Entwurf Archiv Rechnung Besprechung Termin Projekt
`)
