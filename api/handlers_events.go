package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/segmentio/kafka-go"

	"github.com/cockpit-cs/cockpit/schemas"
)

// rejection is one refused event of a POST /events.
type rejection struct {
	Index int    `json:"index"`
	Error string `json:"error"`
}

// POST /api/v1/events: one event or an array of at most 10,000, each
// validated as ingest would (with this server's clock); the valid ones
// are produced in one batch, the others listed.
func (s *Server) postEvents(c *gin.Context) {
	if s.deps.Producer == nil {
		s.fail(c, errUnavailable)
		return
	}
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(c, err)
			return
		}
		s.fail(c, badRequest("cannot read the request body"))
		return
	}
	body = bytes.TrimSpace(body)
	var items []json.RawMessage
	switch {
	case len(body) == 0:
		s.fail(c, badRequest("the body must be one event or an array of events"))
		return
	case body[0] == '[':
		if err := json.Unmarshal(body, &items); err != nil {
			s.fail(c, badRequest("the body is not a valid JSON array"))
			return
		}
		if len(items) > maxEvents {
			s.fail(c, badRequest("%d events in one request; at most %d", len(items), maxEvents))
			return
		}
	default:
		items = []json.RawMessage{body}
	}
	now := s.now()
	msgs := make([]kafka.Message, 0, len(items))
	rejected := []rejection{}
	for i, raw := range items {
		ev, err := schemas.Decode(raw, now, schemas.DefaultLimits())
		if err != nil {
			rejected = append(rejected, rejection{Index: i, Error: err.Error()})
			continue
		}
		// The event goes to Kafka as the client wrote it (compacted):
		// ingest validates it again with its own clock.
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			rejected = append(rejected, rejection{Index: i, Error: "malformed_json: " + err.Error()})
			continue
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.ConversationID), Value: buf.Bytes(), Time: now})
	}
	if len(msgs) > 0 {
		if err := s.deps.Producer.Produce(c.Request.Context(), msgs); err != nil {
			s.logger.Error("cannot produce events", "events", len(msgs), "err", err)
			writeError(c, http.StatusServiceUnavailable, "unavailable", "the events could not be queued; retry later")
			return
		}
	}
	c.JSON(http.StatusAccepted, gin.H{"accepted": len(msgs), "rejected": rejected})
}
