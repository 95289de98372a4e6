/**
 * The Git engine's entry points as fixed in BRIEF.md; the session workers
 * call exactly these.
 */
export { Repository } from '../git/repository';
export { uploadPack } from '../git/upload_pack';
export { receivePack } from '../git/receive_pack';
