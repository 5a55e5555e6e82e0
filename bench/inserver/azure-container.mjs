// Create a blob container in Azurite (bench/inserver.sh): node azure-container.mjs ENDPOINT CONTAINER
// ENDPOINT is http://127.0.0.1:PORT/devstoreaccount1.  Uses @azure/storage-blob from test/node_modules.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../../test/package.json', import.meta.url));
const { BlobServiceClient, StorageSharedKeyCredential } = require('@azure/storage-blob');

const [endpoint, container] = process.argv.slice(2);
const ACCOUNT = 'devstoreaccount1';
const KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';
const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(ACCOUNT, KEY));
await service.getContainerClient(container).createIfNotExists();
console.log(`container ${container} ready`);
