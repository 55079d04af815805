-- What several processes share: which transport node holds each device, which nodes are
-- alive, persistent MQTT sessions, and who delivers each trigger queue (the SQLite backend's
-- migration 0003 has the same tables and the reasons).

ALTER TABLE devices ADD COLUMN connection_node text COLLATE "C" NOT NULL DEFAULT '';

CREATE INDEX devices_by_connection_node ON devices (connection_node) WHERE connected;

CREATE TABLE transport_nodes (
    name text COLLATE "C" PRIMARY KEY,
    last_seen bigint NOT NULL
);

CREATE TABLE mqtt_sessions (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    owner text COLLATE "C",
    subscriptions text NOT NULL,  -- JSON object: topic filter -> QoS
    qos2_received text NOT NULL DEFAULT '[]',  -- JSON list of packet ids awaiting PUBREL
    PRIMARY KEY (realm, device_id),
    FOREIGN KEY (realm, device_id) REFERENCES devices (realm, device_id) ON DELETE CASCADE
);

CREATE INDEX mqtt_sessions_by_owner ON mqtt_sessions (owner) WHERE owner IS NOT NULL;

CREATE TABLE mqtt_session_messages (
    realm text COLLATE "C" NOT NULL,
    device_id bytea NOT NULL,
    position bigint NOT NULL,
    topic text NOT NULL,
    payload bytea NOT NULL,
    qos smallint NOT NULL CHECK (qos IN (1, 2)),
    sent boolean NOT NULL,  -- resent with DUP
    PRIMARY KEY (realm, device_id, position),
    FOREIGN KEY (realm, device_id) REFERENCES mqtt_sessions (realm, device_id) ON DELETE CASCADE
);

CREATE TABLE trigger_queue_leases (
    realm text COLLATE "C" NOT NULL REFERENCES realms (name) ON DELETE CASCADE,
    policy text COLLATE "C" NOT NULL,
    owner text NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (realm, policy)
);
