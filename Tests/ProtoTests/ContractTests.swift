import CProtobufC
import FaultlineProto
import FaultlineRPC
import Foundation
import NIOCore
import Testing

@Suite("The v1 contract")
struct ContractTests {
    func checkDefaults<M: ProtoMessage>(_ type: M.Type, name: String) throws {
        #expect(M.protoName == name)
        #expect(String(cString: M.descriptor.pointee.name) == name)
        let empty = M()
        #expect(try M(serializedBytes: try empty.serializedBytes()) == empty)
        let unpacked = try empty.makeUnpacked()
        defer { protobuf_c_message_free_unpacked(unpacked, nil) }
        #expect(protobuf_c_message_check(unpacked) != 0)
    }

    @Test func everyMessageTypeIsRegisteredAndRoundTrips() throws {
        #expect(ProtoRegistry.messages.count > 150)
        for name in ["faultline.experiments.v1.Execution", "faultline.schedules.v1.Plan", "faultline.secrets.v1.Environment",
                     "faultline.runners.v1.StartRunRequest", "faultline.common.v1.Actor", "grpc.health.v1.HealthCheckRequest"] {
            #expect(ProtoRegistry.messages[name] != nil, "\(name) missing from the registry")
        }
        for (name, type) in ProtoRegistry.messages {
            try checkDefaults(type, name: name)
        }
    }

    static var plan: SchedulesV1.CreatePlanRequest {
        var spec = SchedulesV1.PlanSpec()
        spec.name = "nightly"
        spec.experimentId = "exp-1"
        spec.integrationIds = ["int-1", "int-2"]
        spec.schedule = SchedulesV1.Schedule(kind: .cron(.init(expression: "30 2 * * mon-fri", timeZone: "Europe/Paris")))
        spec.windows = [SchedulesV1.RunWindow(days: [.monday, .friday], startMinute: 540, endMinute: 1020, timeZone: "Europe/Paris")]
        spec.blackouts = [SchedulesV1.Blackout(startAtUs: 1_800_000_000_000_000, endAtUs: 1_800_086_400_000_000, reason: "freeze")]
        spec.concurrencyPolicy = .forbid
        spec.maxInFlight = 2
        spec.missedFirePolicy = .runOnce
        spec.retry = SchedulesV1.RetryPolicy(maxRetries: 3, backoffUs: 30_000_000)
        spec.runOptions = SchedulesV1.RunOptions(maxDurationUs: 600_000_000, rollbackStrategy: .always, runnerLabels: ["zone": "eu-west-1a"])
        return SchedulesV1.CreatePlanRequest(spec: spec, paused: true, requestId: "req-1")
    }

    /// What Python's text_format prints for `plan`: every field landed where the proto says.
    static let planText = """
        spec {
          name: "nightly"
          experiment_id: "exp-1"
          integration_ids: "int-1"
          integration_ids: "int-2"
          schedule {
            cron {
              expression: "30 2 * * mon-fri"
              time_zone: "Europe/Paris"
            }
          }
          windows {
            days: DAY_OF_WEEK_MONDAY
            days: DAY_OF_WEEK_FRIDAY
            start_minute: 540
            end_minute: 1020
            time_zone: "Europe/Paris"
          }
          blackouts {
            start_at_us: 1800000000000000
            end_at_us: 1800086400000000
            reason: "freeze"
          }
          concurrency_policy: CONCURRENCY_POLICY_FORBID
          max_in_flight: 2
          missed_fire_policy: MISSED_FIRE_POLICY_RUN_ONCE
          retry {
            max_retries: 3
            backoff_us: 30000000
          }
          run_options {
            max_duration_us: 600000000
            rollback_strategy: ROLLBACK_STRATEGY_ALWAYS
            runner_labels {
              key: "zone"
              value: "eu-west-1a"
            }
          }
        }
        paused: true
        request_id: "req-1"

        """

    @Test func pythonReadsAContractMessageFieldByField() throws {
        let dir = try Tools.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Tools.python(["-m", "grpc_tools.protoc", "-I", "protos", "--python_out=\(dir.path)",
                              "faultline/common/v1/common.proto", "faultline/experiments/v1/experiments.proto",
                              "faultline/schedules/v1/schedules.proto"], in: Tools.repo)
        let file = dir.appendingPathComponent("plan.bin")
        try Data(Array(buffer: try Self.plan.serializedBytes())).write(to: file)
        let program = """
            import sys
            sys.path.insert(0, sys.argv[1])
            from google.protobuf import text_format, unknown_fields
            from faultline.schedules.v1 import schedules_pb2
            m = schedules_pb2.CreatePlanRequest.FromString(open(sys.argv[2], "rb").read())
            assert len(unknown_fields.UnknownFieldSet(m)) == 0, "unknown fields"
            sys.stdout.write(text_format.MessageToString(m))
            open(sys.argv[2] + ".py", "wb").write(m.SerializeToString(deterministic=True))
            """
        let text = try Tools.python(["-c", program, dir.path, file.path])
        #expect(text == Self.planText)
        let back = try Data(contentsOf: URL(fileURLWithPath: file.path + ".py"))
        #expect(try SchedulesV1.CreatePlanRequest(serializedBytes: [UInt8](back)) == Self.plan)
    }

    @Test("every oneof of the contract round-trips", arguments: [
        SchedulesV1.Schedule.Kind.now(.init()), .at(.init(atUs: 1)), .cron(.init(expression: "@hourly", timeZone: "")),
        .interval(.init(everyUs: 60_000_000, startAtUs: 0)),
    ])
    func schedules(kind: SchedulesV1.Schedule.Kind) throws {
        let message = SchedulesV1.Schedule(kind: kind)
        #expect(try SchedulesV1.Schedule(serializedBytes: message.serializedBytes()).kind == kind)
    }

    @Test func watchItemsAndUserState() throws {
        var event = ExperimentsV1.ExecutionEvent()
        event.executionId = "e"
        event.sequence = 7
        event.payloadJson = #"{"name": "activité"}"#
        var execution = ExperimentsV1.Execution()
        execution.state = .timedOut
        execution.userState = ExperimentsV1.UserState(request: .terminate(.init(skipRollbacks: true)), version: 3)
        let items: [ExperimentsV1.WatchExecutionResponse.Item] = [
            .event(event), .execution(execution), .caughtUp(.init(sequence: 9)), .resumeFrom(.init(afterSequence: 4)),
        ]
        for item in items {
            let message = ExperimentsV1.WatchExecutionResponse(item: item)
            #expect(try ExperimentsV1.WatchExecutionResponse(serializedBytes: message.serializedBytes()) == message)
        }
    }

    @Test func environmentUpdateKeepsPresenceAndBytes() throws {
        var update = SecretsV1.UpdateEnvironmentRequest()
        update.environmentId = "env"
        update.name = CommonV1.StringValue(value: "")  // rename to empty differs from "keep"
        update.setSecrets = [
            SecretsV1.SecretInput(name: "TOKEN", delivery: .init(target: .envVar(.init(name: ""))), value: Array("s3cr3t".utf8)),
            SecretsV1.SecretInput(name: "kube", delivery: .init(target: .file(.init(path: "secrets/kubeconfig", pathEnvVar: "KUBECONFIG"))),
                                  value: [0, 1, 2, 255]),
        ]
        update.deleteSecrets = ["OLD"]
        let decoded = try SecretsV1.UpdateEnvironmentRequest(serializedBytes: update.serializedBytes())
        #expect(decoded == update)
        #expect(decoded.name != nil && decoded.description == nil)
    }

    @Test func integrationConfigs() throws {
        let configs: [SecretsV1.IntegrationConfig.Kind] = [
            .httpPreCheck(.init(probe: .init(url: "http://127.0.0.1/health", expectedStatus: [200, 204]))),
            .httpSafeguard(.init(probe: .init(url: "http://x", secretHeaders: ["Authorization": "TOKEN"]), intervalUs: 1, failureThreshold: 2)),
            .slack(.init(channel: "#chaos", tokenSecret: "SLACK", events: ["run-finished"])),
            .webhook(.init(url: "https://hooks", signingSecret: "HMAC")),
            .prometheus(.init(pushgatewayUrl: "http://pg:9091", labels: ["team": "sre"])),
            .opentelemetry(.init(endpoint: "http://otel:4317", otlpProtocol: .grpc, serviceName: "chaos")),
        ]
        for kind in configs {
            let message = SecretsV1.IntegrationConfig(kind: kind)
            #expect(try SecretsV1.IntegrationConfig(serializedBytes: message.serializedBytes()) == message)
        }
    }
}

@Suite("Contract metadata")
struct ContractMetadataTests {
    @Test func validationReportTravelsInTheTrailer() throws {
        let report = ExperimentsV1.ValidationReport(problems: [
            .init(path: "$.method[0].provider", severity: .error, code: "activity.provider.missing", message: "no provider"),
            .init(path: "$.secrets.k", severity: .warning, code: "secret.inline", message: "inline secret"),
        ])
        let error = RPCError.invalidExperiment(report, message: "the experiment has 1 error")
        #expect(error.code == .invalidArgument)
        #expect(error.validationReport == report)
        #expect(RPCError(.invalidArgument, "no trailer").validationReport == nil)
        var garbage = Metadata()
        garbage.addBinary([0xFF], forKey: ContractMetadata.validationReport)
        #expect(RPCError(.invalidArgument, "bad trailer", metadata: garbage).validationReport == nil)
    }
}
