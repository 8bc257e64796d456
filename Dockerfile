# Build: the development install compiles the engine to dist/.
FROM node:24-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY proto ./proto
COPY actors ./actors
COPY src ./src
COPY examples ./examples
RUN npm run build

# Run: production dependencies and the compiled engine only (no tsx, no embedded PostgreSQL),
# as the unprivileged `node` user, node itself as PID 1 (it handles SIGTERM: calls in flight
# finish, the worker's batch commits, then it exits 0).
FROM node:24-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
ENV GRPC_ADDRESS=0.0.0.0:50051
EXPOSE 50051
# grpc.health.v1 Check of the server: NOT_SERVING while NATS or PostgreSQL is unreachable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "dist/src/dev/healthcheck.js"]
# DATABASE_URL, NATS_URL and AUTH_JWT_SECRET must be given; `gateway` or `worker` to run one role.
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["all"]
