FROM node:20-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY actors ./actors
COPY src ./src
ENV GRPC_ADDRESS=0.0.0.0:50051
EXPOSE 50051
CMD ["npm", "start"]
