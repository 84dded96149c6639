# logaggregator container image.
#   docker build -t logaggregator:0.1.0 .
#   docker run -v /srv/app/logs:/var/log/app:ro -v la-state:/var/lib/logaggregator \
#     -p 127.0.0.1:9810:9810 logaggregator:0.1.0
# The default config (deploy/container/config.yaml) tails /var/log/app/**/*.log to stdout;
# mount another file at /etc/logaggregator/config.yaml, or pass --config FILE.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked \
 && install -m 0755 target/release/logaggregator /logaggregator

# Same Debian release as the builder, so the binary finds the glibc it was linked against.
FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 logaggregator \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/logaggregator \
      --shell /usr/sbin/nologin logaggregator \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/logaggregator
COPY --from=build /logaggregator /usr/local/bin/logaggregator
COPY deploy/container/config.yaml /etc/logaggregator/config.yaml
ENV LOGAGGREGATOR_CONFIG=/etc/logaggregator/config.yaml
# Checkpoints: keep this volume across container restarts, or lines are shipped again.
VOLUME /var/lib/logaggregator
# HTTP API (api.listen in the config): /health, /metrics, /stats.
EXPOSE 9810
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
# SIGTERM (docker stop) is a graceful stop.
ENTRYPOINT ["logaggregator"]
