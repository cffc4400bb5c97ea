# Drover worker node: hosts workers; scale it horizontally.
# Built by `make images` from a staging directory holding the static
# binary from bin/; nothing is pulled. Configure with DROVER_* variables
# (docs/deploy.md).
FROM scratch
COPY worker /worker
ENV DROVER_HTTP_ADDR=:8082 \
    DROVER_LOG_FORMAT=json
EXPOSE 8082
USER 65532:65532
# /readyz through the binary itself: a scratch image has no curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/worker", "healthcheck"]
# SIGTERM hands work over to other nodes before exiting; give it time
# (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/worker"]
