//! The protocols of this build, one `#[cfg]` arm per Cargo feature.

use protoplex_core::RouterBuilder;

use crate::config::Config;

/// Adds the protocols compiled in. HTTP and WebSocket share the HTTP port when
/// both are built; a build with only one of them serves it on its own port.
/// AMQP connects to its broker in the background and retries until it answers.
pub(crate) fn register(builder: RouterBuilder, config: &Config) -> RouterBuilder {
    #[allow(unused_mut)]
    let mut builder = builder;
    #[cfg(all(feature = "http", feature = "websocket"))]
    {
        let websocket = protoplex_websocket::WebSocketProtocol::shared(config.websocket.clone());
        let http = protoplex_http::HttpProtocol::new(config.http.clone()).with_websocket(websocket.clone());
        // WebSocket first: it is ready before HTTP hands it any upgrade.
        builder = builder.protocol(websocket).protocol(http);
    }
    #[cfg(all(feature = "http", not(feature = "websocket")))]
    {
        builder = builder.protocol(protoplex_http::HttpProtocol::new(config.http.clone()));
    }
    #[cfg(all(feature = "websocket", not(feature = "http")))]
    {
        builder = builder.protocol(protoplex_websocket::WebSocketProtocol::new(
            config.websocket.clone(),
        ));
    }
    #[cfg(feature = "mqtt")]
    {
        builder = builder.protocol(protoplex_mqtt::MqttProtocol::new(config.mqtt.clone()));
    }
    #[cfg(feature = "amqp")]
    {
        builder = builder.protocol(protoplex_amqp::AmqpProtocol::new(config.amqp.clone()));
    }
    let _ = config;
    builder
}
