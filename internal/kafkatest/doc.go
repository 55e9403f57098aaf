// Package kafkatest gives integration tests a real Apache Kafka broker: the
// single-node KRaft broker that scripts/kafka.sh runs on loopback.
//
// `make test` starts the broker and sets
//
//	COCKPIT_TEST_KAFKA=127.0.0.1:19092  the broker's address
//	COCKPIT_REQUIRE_KAFKA=1             no integration test may skip
//
// With COCKPIT_TEST_KAFKA unset, [Broker] skips the test, or fails it when
// COCKPIT_REQUIRE_KAFKA=1, so a missing broker never passes silently in CI.
// To run integration tests by hand:
//
//	eval "$(scripts/kafka.sh start)"
//	COCKPIT_TEST_KAFKA=$KAFKA go test -race ./...
//	scripts/kafka.sh stop
//
// Each test gets its own topic from [Topic], deleted when the test ends, so
// tests can run in parallel against one broker. [Restart] restarts that
// shared broker for fault tests: see its comment for how it is serialized
// against every other test that called [Broker].
package kafkatest
