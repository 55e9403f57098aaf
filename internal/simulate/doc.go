// Package simulate generates realistic, seeded contract-v1 conversation
// traffic for a bot-first contact centre: the simulator behind `cockpit
// simulate` and the live traffic of `cockpit demo`.
//
// The model is a discrete-event simulation. Conversations arrive as a
// non-homogeneous Poisson process whose rate follows a diurnal curve in
// Asia/Shanghai time (quiet at night, peaks late morning and evening) times
// [Config.PeakRate]. Each conversation is a small state machine (bot turns,
// perhaps a transfer, a wait for a human that grows with the load of its
// queue, agent turns, close or abandon, complaint, CSAT) whose next step sits
// in one min-heap keyed by event time, so a million open conversations cost a
// million heap entries, not a million goroutines.
//
// Scheduled incidents ([IncidentSpec]: a regional complaint spike, a queue
// whose response time degrades, a business line whose resolution rate
// slides) change the model's parameters inside their windows; [Simulator.Schedule]
// lists them so the caller can print what the wall display is about to show.
//
// Two drivers share the engine and therefore produce the same stream for the
// same seed, start time and anchor:
//
//   - [Simulator.Generate] fast-forwards over a past range and hands events to
//     a callback in occurred_at order, as fast as the CPU allows (backfills,
//     tests, benchmarks);
//   - [Simulator.Run] emits events as their occurred_at comes due on the wall
//     clock, in batches, to a [Sink] such as [NewKafkaSink].
//
// Optional faults (late delivery, duplicates, invalid events, see [Faults])
// exercise the ingest's lateness handling, de-duplication and dead-letter
// path. They are off unless configured, and off in Generate unless
// [Faults.InFastForward] is set, so a backfill is clean history.
//
// Timing parameters are calibrated on the public samples under
// shared/data/real (see the comments on the timing tables in model.go).
package simulate
