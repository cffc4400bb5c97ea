# Drover job-master node: hosts the job masters the leader assigns to it.
# Built by `make images` from a staging directory holding the static
# binary from bin/; nothing is pulled. Configure with DROVER_* variables
# (docs/deploy.md).
FROM scratch
COPY jobmaster /jobmaster
ENV DROVER_HTTP_ADDR=:8081 \
    DROVER_LOG_FORMAT=json
EXPOSE 8081
USER 65532:65532
# /readyz through the binary itself: a scratch image has no curl.
HEALTHCHECK --interval=5s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/jobmaster", "healthcheck"]
# SIGTERM hands work over to other nodes before exiting; give it time
# (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/jobmaster"]
