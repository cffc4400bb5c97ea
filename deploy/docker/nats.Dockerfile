# NATS with JetStream, built from the nats-server module Drover is tested
# against (cmd/nats-server). Built by `make images` from a staging
# directory holding bin/nats-server, nats-server.conf and an empty data/;
# nothing is pulled. The official `nats` image takes the same flags and can
# replace this one (docs/deploy.md).
FROM scratch
COPY nats-server /nats-server
COPY nats-server.conf /etc/nats/nats-server.conf
# An empty /data owned by the server's user: a fresh named volume mounted
# there inherits the ownership, so the server need not run as root.
COPY --chown=65532:65532 data /data
VOLUME /data
USER 65532:65532
# 4222 clients, 6222 cluster routes, 8222 HTTP monitoring.
EXPOSE 4222 6222 8222
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/nats-server", "healthcheck"]
ENTRYPOINT ["/nats-server"]
CMD ["--config", "/etc/nats/nats-server.conf"]
