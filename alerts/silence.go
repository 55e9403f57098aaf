package alerts

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Silence mutes the notifications of alerts whose labels match, between
// StartsAt and EndsAt. Silenced alerts still exist and are shown; they are
// just not sent.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  Matchers  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
	CreatedAt time.Time `json:"created_at"`
}

// Active reports whether the silence applies at t.
func (s Silence) Active(t time.Time) bool {
	return !t.Before(s.StartsAt) && t.Before(s.EndsAt)
}

// Validate checks a silence before it is stored.
func (s *Silence) Validate() error {
	if len(s.Matchers) > MaxSilenceMatchers {
		return fmt.Errorf("silence: %d matchers, the limit is %d", len(s.Matchers), MaxSilenceMatchers)
	}
	for i := range s.Matchers {
		if err := s.Matchers[i].checkSize(); err != nil {
			return fmt.Errorf("silence: %w", err)
		}
	}
	if err := s.Matchers.Compile(); err != nil {
		return fmt.Errorf("silence: %w", err)
	}
	if s.CreatedBy == "" {
		return errors.New("silence: created_by is required")
	}
	if !s.EndsAt.After(s.StartsAt) {
		return errors.New("silence: ends_at must be after starts_at")
	}
	if len(s.Comment) > 1000 || len(s.CreatedBy) > 128 {
		return errors.New("silence: comment (1000) or created_by (128) too long")
	}
	return nil
}

// MaxSilenceMatchers bounds the matchers of one silence.
const MaxSilenceMatchers = 32

// Silences holds the silences in force and past.
type Silences struct {
	mu   sync.RWMutex
	byID map[string]Silence
}

// NewSilences returns a set holding ss (as loaded from the store).
func NewSilences(ss []Silence) (*Silences, error) {
	s := &Silences{byID: map[string]Silence{}}
	for _, x := range ss {
		if err := x.Matchers.Compile(); err != nil {
			return nil, fmt.Errorf("stored silence %s: %w", x.ID, err)
		}
		s.byID[x.ID] = x
	}
	return s, nil
}

// Add validates and stores a new silence, giving it an ID.
func (s *Silences) Add(x Silence, now time.Time) (Silence, error) {
	x, err := newSilence(x, now)
	if err != nil {
		return Silence{}, err
	}
	s.mu.Lock()
	s.byID[x.ID] = x
	s.mu.Unlock()
	return x, nil
}

// newSilence validates x and gives it an ID and creation time.
func newSilence(x Silence, now time.Time) (Silence, error) {
	if x.StartsAt.IsZero() {
		x.StartsAt = now
	}
	if err := x.Validate(); err != nil {
		return Silence{}, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	x.ID = hex.EncodeToString(b[:])
	x.CreatedAt = now
	return x, nil
}

// Replace makes ss the whole set (as read from the store, where every
// instance writes the silences it receives).
func (s *Silences) Replace(ss []Silence) error {
	byID := make(map[string]Silence, len(ss))
	for _, x := range ss {
		if err := x.Matchers.Compile(); err != nil {
			return fmt.Errorf("stored silence %s: %w", x.ID, err)
		}
		byID[x.ID] = x
	}
	s.mu.Lock()
	s.byID = byID
	s.mu.Unlock()
	return nil
}

// expire ends x at now (if it has not ended yet).
func expire(x Silence, now time.Time) Silence {
	if x.EndsAt.After(now) {
		x.EndsAt = now
		if x.StartsAt.After(now) {
			x.StartsAt = now
		}
	}
	return x
}

// Expire ends a silence now. It returns false for an unknown ID.
func (s *Silences) Expire(id string, now time.Time) (Silence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.byID[id]
	if !ok {
		return Silence{}, false
	}
	x = expire(x, now)
	s.byID[id] = x
	return x, true
}

// List returns every silence, newest first.
func (s *Silences) List() []Silence {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Silence, 0, len(s.byID))
	for _, x := range s.byID {
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out
}

// Silenced returns the IDs of the silences that mute labels at t.
func (s *Silences) Silenced(labels map[string]string, t time.Time) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var ids []string
	for id, x := range s.byID {
		if x.Active(t) && x.Matchers.Matches(labels) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// InhibitRule mutes target alerts while a source alert fires, as in
// Alertmanager: a nationwide complaint spike mutes the regional ones it
// covers, so a national rise pages once.
type InhibitRule struct {
	SourceMatchers Matchers `yaml:"source_matchers" json:"source_matchers"`
	TargetMatchers Matchers `yaml:"target_matchers" json:"target_matchers"`
	// Equal lists labels that must have the same value on source and target.
	Equal []string `yaml:"equal" json:"equal"`
}

// DefaultInhibitRules returns the built-in inhibition: a national spike
// mutes regional spikes of the same rule.
func DefaultInhibitRules() []InhibitRule {
	return []InhibitRule{{
		SourceMatchers: Matchers{{Name: "scope", Op: "=", Value: "national"}},
		TargetMatchers: Matchers{{Name: "scope", Op: "=", Value: "region"}},
		Equal:          []string{"rule"},
	}}
}

// Inhibited reports whether target is muted by one of the firing alerts.
// Labels are matched with the rule name added as label "rule".
func Inhibited(target Record, firing []Record, rules []InhibitRule) bool {
	tl := withRule(target)
	for _, ir := range rules {
		if !ir.TargetMatchers.Matches(tl) {
			continue
		}
		for _, src := range firing {
			if src.Fingerprint == target.Fingerprint || src.State != StateFiring {
				continue
			}
			sl := withRule(src)
			if !ir.SourceMatchers.Matches(sl) {
				continue
			}
			equal := true
			for _, name := range ir.Equal {
				if sl[name] != tl[name] {
					equal = false
					break
				}
			}
			if equal {
				return true
			}
		}
	}
	return false
}

func withRule(r Record) map[string]string {
	l := make(map[string]string, len(r.Labels)+2)
	for k, v := range r.Labels {
		l[k] = v
	}
	l["rule"] = r.Rule
	l["severity"] = r.Severity
	return l
}
