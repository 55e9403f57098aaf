package alerts

import (
	"context"
	"log/slog"
)

// LogReceiver is the name of the built-in receiver that writes
// notifications to the log; it is the default route when no receivers are
// configured, so alerts are visible from the first run.
const LogReceiver = "log"

// LogNotifier writes notifications to the structured log.
type LogNotifier struct{ Logger *slog.Logger }

// Notify logs one line per alert of the notification.
func (l LogNotifier) Notify(_ context.Context, n *Notification) (bool, error) {
	for _, a := range n.Alerts {
		l.Logger.Info("notification", "receiver", n.Receiver, "notification", n.ID, "status", a.Status,
			"rule", a.Rule, "severity", a.Severity, "labels", a.Labels, "explanation", a.Explanation, "url", a.URL)
	}
	return false, nil
}
