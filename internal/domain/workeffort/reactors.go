package workeffort

import (
	"github.com/pyrite-dev/pyrite/internal/bus"
	"github.com/pyrite-dev/pyrite/internal/reactor"
)

// CompletedV1 is the public integration event of a completed work effort.
const CompletedV1 = "work-effort.completed.v1"

// Integrations are the module's integration events (the integration reactor, group
// "integration"): WorkEffort:Completed becomes work-effort.completed.v1 on
// pyrite.integration with the seed's payload: workEffortId, title, completedAt (the event's
// time when the event has none) and ticketCount.
func Integrations() []reactor.IntegrationRule {
	return []reactor.IntegrationRule{{
		From: TypeCompleted, To: CompletedV1, Handler: "integration-work-effort-completed", Source: "pyrite.work-efforts",
		Data: func(ev *bus.Event) map[string]any {
			d := reactor.Data(ev.Data)
			title, _ := d.String("title")
			completedAt, ok := d.Time("completedAt")
			if !ok {
				completedAt = ev.Time
			}
			tickets, _ := d.Int("ticketCount")
			return map[string]any{"workEffortId": ev.AggregateID, "title": title, "completedAt": completedAt, "ticketCount": int32(tickets)}
		},
	}}
}

// Notifications are the module's emails (the notification reactor, group "notifications"),
// as the seed's NotificationReactor writes them: on WorkEffort:Completed, to the event's
// assigneeEmail (none when null), subject "Work effort completed: <title>", body "<title>
// has been completed!".
func Notifications() []reactor.Notification {
	return []reactor.Notification{{
		On: TypeCompleted, Handler: "notification-email",
		Email: func(ev *bus.Event) (to, subject, body string) {
			d := reactor.Data(ev.Data)
			to, _ = d.String("assigneeEmail")
			title, _ := d.String("title")
			return to, "Work effort completed: " + title, title + " has been completed!\r\n"
		},
	}}
}
