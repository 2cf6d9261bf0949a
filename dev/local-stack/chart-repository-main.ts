import { z } from 'zod';
import { chartRepositoryServer, listenOnLoopback } from './chart-repository.ts';

/** Entry point of the chart-repository daemon that the local stack starts (chart-repository.ts). */
const config = z
  .object({
    CHART_REPOSITORY_ROOT: z.string().min(1),
    CHART_REPOSITORY_PORT: z.coerce.number().int().min(1).max(65535),
    CHART_REPOSITORY_USERNAME: z.string().min(1),
    CHART_REPOSITORY_PASSWORD: z.string().min(1),
  })
  .parse(process.env);

const server = chartRepositoryServer(config.CHART_REPOSITORY_ROOT, {
  username: config.CHART_REPOSITORY_USERNAME,
  password: config.CHART_REPOSITORY_PASSWORD,
});
await listenOnLoopback(server, config.CHART_REPOSITORY_PORT);
process.stdout.write(
  `chart repository serving ${config.CHART_REPOSITORY_ROOT} on 127.0.0.1:${config.CHART_REPOSITORY_PORT}\n`,
);
process.once('SIGTERM', () => server.close(() => process.exit(0)));
