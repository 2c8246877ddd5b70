package fakellm

import (
	"regexp"
	"strings"

	"github.com/arq-memory/arq/extract"
)

// The default model reads a user's sentences by rule:
//
//	"My <thing> is <value>."      -> semantic "User's <thing> is <value>", 0.7, tag <thing>
//	"My <thing> is also <value>." -> semantic "User's <thing> is also <value>", 0.7, tag <thing>
//	"I like <x>."                 -> semantic "User likes <x>", 0.5, tag preference
//
// and decides a candidate against its known memories: the same content
// is known already (none); "User's X is also V" beside "User's X is W"
// updates it to "User's X is W and V"; "User's X is V" beside "User's X
// is W" supersedes it; anything else is added.

// memory is a memory in an answer, as the extract schemas have it.
type memory struct {
	Type       string   `json:"type"`
	Content    string   `json:"content"`
	Importance float64  `json:"importance"`
	Tags       []string `json:"tags"`
}

type candidatesAnswer struct {
	Candidates []memory `json:"candidates"`
}

type decision struct {
	Candidate int    `json:"candidate"`
	Action    string `json:"action"`
	Target    string `json:"target"`
	Memory    memory `json:"memory"`
	Reason    string `json:"reason"`
}

type decisionsAnswer struct {
	Decisions []decision `json:"decisions"`
}

var (
	mySentence   = regexp.MustCompile(`^My (.+?) is (also )?(.+)\.$`)
	likeSentence = regexp.MustCompile(`^I like (.+)\.$`)
	userFact     = regexp.MustCompile(`^User's (.+?) is (also )?(.+)$`)
	roleLine     = regexp.MustCompile(`^(user|assistant|system|tool): `)
)

// candidates reads a transcript of "role: content" lines (a line without
// a role continues the message before it) and proposes the user's
// sentences that follow the rules.
func candidates(transcript string) []memory {
	out := []memory{}
	role := ""
	for _, line := range strings.Split(transcript, "\n") {
		if m := roleLine.FindStringSubmatch(line); m != nil {
			role, line = m[1], line[len(m[0]):]
		}
		if role != "user" {
			continue
		}
		for _, s := range strings.SplitAfter(line, ".") {
			s = strings.TrimSpace(s)
			if m := mySentence.FindStringSubmatch(s); m != nil {
				tag := strings.ToLower(strings.ReplaceAll(m[1], " ", "-"))
				out = append(out, memory{Type: "semantic", Content: "User's " + m[1] + " is " + m[2] + m[3], Importance: 0.7, Tags: []string{tag}})
			} else if m := likeSentence.FindStringSubmatch(s); m != nil {
				out = append(out, memory{Type: "semantic", Content: "User likes " + m[1], Importance: 0.5, Tags: []string{"preference"}})
			}
		}
	}
	return out
}

// decide decides every candidate, and changes each known memory once at
// most, as a careful model would.
func decide(req extract.DecideRequest) []decision {
	out := []decision{}
	changed := map[string]bool{}
	for _, c := range req.Candidates {
		d := decideOne(c, changed)
		if d.Target != "" && d.Action != "none" {
			changed[d.Target] = true
		}
		out = append(out, d)
	}
	return out
}

func decideOne(c extract.ShownCandidate, changed map[string]bool) decision {
	cand := memory{Type: c.Type, Content: c.Content, Importance: c.Importance, Tags: c.Tags}
	d := decision{Candidate: c.Candidate, Action: "add", Memory: cand, Reason: "new fact"}
	for _, k := range c.Known {
		if k.Content == c.Content {
			d.Action, d.Target, d.Reason = "none", k.Alias, "already known"
			return d
		}
	}
	cm := userFact.FindStringSubmatch(c.Content)
	if cm == nil {
		return d
	}
	for _, k := range c.Known {
		km := userFact.FindStringSubmatch(k.Content)
		if km == nil || km[1] != cm[1] || changed[k.Alias] {
			continue
		}
		if cm[2] != "" {
			d.Action, d.Target, d.Reason = "update", k.Alias, cm[1]+" has one more value"
			d.Memory.Content = k.Content + " and " + cm[3]
		} else {
			d.Action, d.Target, d.Reason = "supersede", k.Alias, cm[1]+" changed from "+km[2]+km[3]+" to "+cm[3]
		}
		return d
	}
	return d
}
