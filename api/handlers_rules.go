package api

import (
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"gopkg.in/yaml.v3"

	"github.com/cockpit-cs/cockpit/pipeline/rules"
)

// GET /api/v1/rules: the rule set in force, as YAML (the format PUT
// takes), or as JSON when the client accepts only application/json.
func (s *Server) getRules(c *gin.Context) {
	if s.deps.Rules == nil {
		s.fail(c, errUnavailable)
		return
	}
	rs := s.deps.Rules.Rules()
	if rs == nil {
		rs = &rules.RuleSet{}
	}
	if rs.Rules == nil {
		rs = &rules.RuleSet{Rules: []rules.Rule{}}
	}
	if c.NegotiateFormat("application/yaml", "application/json") == "application/json" {
		// YAML is the canonical form; JSON is its generic decoding, so
		// durations stay "2m" and field names stay the YAML ones.
		b, err := yaml.Marshal(rs)
		if err != nil {
			s.fail(c, err)
			return
		}
		var doc any
		if err := yaml.Unmarshal(b, &doc); err != nil {
			s.fail(c, err)
			return
		}
		c.JSON(http.StatusOK, doc)
		return
	}
	b, err := yaml.Marshal(rs)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Data(http.StatusOK, "application/yaml; charset=utf-8", b)
}

// PUT /api/v1/rules: replace the rule set with the YAML body. A set with
// any error is refused with 400 and every error (with its line); the
// rules in force stay.
func (s *Server) putRules(c *gin.Context) {
	if s.deps.Rules == nil {
		s.fail(c, errUnavailable)
		return
	}
	if s.deps.RuleVersions != nil {
		if err := s.deps.RuleVersions.Writable(); err != nil {
			s.fail(c, err)
			return
		}
	}
	src, err := io.ReadAll(c.Request.Body)
	if err != nil {
		s.fail(c, err)
		return
	}
	rs, err := rules.ParseRules(src)
	if err != nil {
		var msgs []string
		for _, line := range strings.Split(err.Error(), "\n") {
			if line != "" {
				msgs = append(msgs, line)
			}
		}
		var re *rules.RuleError
		if errors.As(err, &re) || len(msgs) > 0 {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": gin.H{
				"code": "bad_request", "message": strings.Join(msgs, "; "), "details": msgs}})
			return
		}
		s.fail(c, badRequest("invalid rule set"))
		return
	}
	by := principal(c).Name
	if s.deps.RuleVersions == nil {
		s.deps.Rules.SetRules(rs)
		s.logger.Info("rules replaced", "rules", len(rs.Rules), "by", by)
		c.JSON(http.StatusOK, gin.H{"rules": len(rs.Rules)})
		return
	}
	v, err := s.deps.RuleVersions.Replace(c.Request.Context(), src, rs, by)
	if err != nil {
		s.fail(c, err)
		return
	}
	s.logger.Info("rules replaced", "rules", len(rs.Rules), "by", by, "version", v.Version)
	c.JSON(http.StatusOK, gin.H{"rules": len(rs.Rules), "version": v.Version})
}

// maxRuleHistory bounds one GET /api/v1/rules/history answer.
const maxRuleHistory = 500

// GET /api/v1/rules/history?limit: the stored versions of the rule set,
// newest first, each with who put it, when, and the diff from the one
// before.
func (s *Server) ruleHistory(c *gin.Context) {
	if s.deps.RuleVersions == nil {
		s.fail(c, errUnavailable)
		return
	}
	limit, err := parseLimit(c.Request.URL.Query().Get("limit"), 50, maxRuleHistory)
	if err != nil {
		s.fail(c, err)
		return
	}
	vs, err := s.deps.RuleVersions.History(c.Request.Context(), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if vs == nil {
		vs = []rules.RuleVersion{}
	}
	c.JSON(http.StatusOK, gin.H{"versions": vs})
}

// maxBacktestEvaluations bounds one backtest ((to-from)/step).
const maxBacktestEvaluations = 10_000

// POST /api/v1/rules/backtest?from&to&step: the episodes the rules in
// force would have raised over the window.
func (s *Server) backtest(c *gin.Context) {
	if s.deps.Rules == nil {
		s.fail(c, errUnavailable)
		return
	}
	v := c.Request.URL.Query()
	w, err := parseWindow(v, s.now(), s.lim)
	if err != nil {
		s.fail(c, err)
		return
	}
	if _, err := single(v, "step"); err != nil {
		s.fail(c, err)
		return
	}
	step, err := parseStep(v.Get("step"), w, limits{maxRange: s.lim.maxRange, maxSteps: maxBacktestEvaluations})
	if err != nil {
		s.fail(c, err)
		return
	}
	eps, err := s.deps.Rules.Backtest(c.Request.Context(), w.From, w.To, step)
	if err != nil {
		s.fail(c, err)
		return
	}
	if eps == nil {
		eps = []rules.Episode{}
	}
	c.JSON(http.StatusOK, gin.H{"from": w.From, "to": w.To, "step_seconds": int64(step.Seconds()), "episodes": eps})
}
